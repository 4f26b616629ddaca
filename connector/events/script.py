"""The `script` event plugin: load the user's script once, call produce(), normalise.

Contract (the seed's): `produce({'timestamp': aware datetime, 'tags': tuple[str, ...]})`
returns a `str` (one event) or a `list[str]` (zero or more events). Module-level
state persists across calls because the module is loaded exactly once.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator

from connector.fields import ConfigPath, Strict

__all__ = ["Script", "ScriptConfig", "ScriptLoadError", "ScriptStop", "load_script"]

log = logging.getLogger("connector.script")


class ScriptConfig(Strict):
    path: ConfigPath
    on_error: Literal["skip", "stop"] = "skip"

    @field_validator("path")
    @classmethod
    def _exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"script not found: {value}")
        return value


class ScriptLoadError(Exception):
    """The script cannot be used; the message names the file and, when known, the line."""


class ScriptStop(Exception):
    """produce() failed and `on_error: stop` asks the run to end."""


class Script:
    """A loaded script plus the accounting of its run-time errors."""

    def __init__(self, produce: Callable[[dict], Any], path: Path, on_error: str):
        self.produce = produce
        self.path = path
        self.on_error = on_error
        self.errors: Counter[str] = Counter()  # exception class or bad_return_type -> count
        self._seen: set[tuple[str, int]] = set()

    def events(self, params: dict) -> list[str]:
        """One call, normalised; [] (and the error counted) when produce() misbehaves."""
        try:
            result = self.produce(params)
        except Exception as exc:
            self.raised(exc)
            return []
        return self.checked(result)

    def checked(self, result: Any) -> list[str]:
        if type(result) is str:
            return [result]
        if type(result) is list:
            for item in result:
                if type(item) is not str:
                    self.bad_return(f"a list holding {type(item).__name__}")
                    return []
            return result
        self.bad_return(type(result).__name__)
        return []

    def raised(self, exc: Exception) -> None:
        kind = type(exc).__name__
        self.errors[kind] += 1
        where = self._where(exc)
        message = f"produce() raised {kind}: {exc} at {where}"
        self._report((kind, where), message)

    def bad_return(self, what: str) -> None:
        self.errors["bad_return_type"] += 1
        message = f"produce() returned {what}; expected str or list[str] ({self.path.name})"
        self._report(("bad_return_type", what), message)

    def _report(self, key: tuple, message: str) -> None:
        if self.on_error == "stop":
            raise ScriptStop(message)
        if key not in self._seen:  # once per distinct error: the counters carry the rest
            self._seen.add(key)
            log.error("%s; that timestamp's events are skipped, repeats are counted", message)

    def _where(self, exc: Exception) -> str:
        frames = [
            f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(self.path)
        ]
        frame = frames[-1] if frames else traceback.extract_tb(exc.__traceback__)[-1]
        line = (frame.line or "").strip()
        return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}: {line}"


def load_script(config: ScriptConfig) -> Script:
    path = config.path.resolve()
    if not path.is_file():
        raise ScriptLoadError(f"script not found: {path}")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # a helper module beside the script is importable
    name = f"connector_script_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ScriptLoadError(
            f"{exc.filename or path}:{exc.lineno}: SyntaxError: {exc.msg}"
        ) from None
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        line = f":{frames[-1].lineno}" if frames else ""
        raise ScriptLoadError(
            f"{path}{line}: loading the script raised {type(exc).__name__}: {exc}"
        ) from None
    produce = getattr(module, "produce", None)
    if produce is None:
        raise ScriptLoadError(f"{path}: defines no produce(params) function")
    if not callable(produce):
        raise ScriptLoadError(f"{path}: produce is a {type(produce).__name__}, not a function")
    return Script(produce, path, config.on_error)
