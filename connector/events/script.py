"""The `script` event plugin: load the user's script once, call produce(), normalise.

Contract (the seed's): `produce({'timestamp': aware datetime, 'tags': tuple[str, ...]})`
returns a `str` (one event) or a `list[str]` (zero or more events). Module-level
state persists across calls because the module is loaded exactly once.

Whatever produce() does is the script's business, not the run's end: any exception,
`SystemExit` and other `BaseException`s included (only `KeyboardInterrupt`, the user's
own Ctrl-C, passes through), is a script error counted by class. Any return value other
than a `str` or a `list` of `str` (exact types: no subclasses, tuples or generators) is a
`bad_return_type`, and that call's events are all skipped, even when only one item of a
list is wrong. Any `str` is a valid event here, empty, with NUL, newlines or lone
surrogates included; each output decides what it can write.
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
        try:
            found = value.is_file()
        except OSError as exc:  # a name too long, a folder it may not enter...
            raise ValueError(f"cannot read script {value}: {exc.strerror or exc}") from None
        if not found:
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
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # sys.exit() in produce() is a script error too
            self.raised(exc)
            return []
        return self.checked(result)

    def checked(self, result: Any) -> list[str]:
        """The events of one call: [] (and bad_return_type counted) unless `result` is a
        str or a list holding only str; a list is returned as it is, not copied."""
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

    def raised(self, exc: BaseException) -> None:
        """Count and report what produce() raised; KeyboardInterrupt is passed on."""
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        kind = type(exc).__name__
        self.errors[kind] += 1
        where = self._where(exc)
        message = f"produce() raised {kind}: {_text(exc)} at {where}"
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

    def _where(self, exc: BaseException) -> str:
        """The script's own innermost frame: file, line, function and the code there."""
        frames = traceback.extract_tb(exc.__traceback__)
        own = [f for f in frames if f.filename == str(self.path)]
        if not (own or frames):
            return self.path.name
        frame = (own or frames)[-1]
        line = (frame.line or "").strip()
        return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}: {line}"


def _text(exc: BaseException, limit: int = 500) -> str:
    """An exception's message, bounded; a hostile __str__ cannot break the report."""
    try:
        text = str(exc)
    except Exception:
        text = "(its message cannot be shown)"
    return text if len(text) <= limit else text[:limit] + "..."


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
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # sys.exit() at module level included
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        line = f":{frames[-1].lineno}" if frames else ""
        raise ScriptLoadError(
            f"{path}{line}: loading the script raised {type(exc).__name__}: {_text(exc)}"
        ) from None
    produce = getattr(module, "produce", None)
    if produce is None:
        raise ScriptLoadError(f"{path}: defines no produce(params) function")
    if not callable(produce):
        raise ScriptLoadError(f"{path}: produce is a {type(produce).__name__}, not a function")
    return Script(produce, path, config.on_error)
