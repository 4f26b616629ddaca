"""The `script` event plugin: load the user's script once, call produce(), normalise.

Contract (the seed's): `produce({'timestamp': aware datetime, 'tags': tuple[str, ...]})`
returns a `str` (one event) or a `list[str]` (zero or more events). Module-level
state persists across calls because the module is loaded exactly once.

Whatever produce() does is the script's business, not the run's end: any exception,
`SystemExit` and other `BaseException`s included (only `KeyboardInterrupt`, the user's
own Ctrl-C, passes through), is a script error counted by class. Any return value other
than a `str` or a `list` of `str` (subclasses of either count as them: `numpy.str_` is a
`str`; tuples, generators and other iterables do not) is a `bad_return_type`, and that
call's events are all skipped, even when only one item of a list is wrong. The events are
taken as they are at the return: a list changed afterwards by the script sends what it held
then. Any `str` is a valid event here, empty, with NUL, newlines or lone surrogates
included; each output decides what it can write.

What produce() may do to the process, and what the run does about it:
- A stopping run (SIGTERM, SIGINT) gives the call in progress HUNG_AFTER seconds (at most
  the shortest flush_timeout) to return; then ProduceHung is raised inside it, through a
  SIGALRM timer, so a sleep, a blocking read or a busy loop ends there, and the call is
  counted as `did_not_return`, named by its file and line. A call that even this cannot
  reach (C code that never lets Python run) ends the process HARD_AFTER seconds past the
  longest flush_timeout, with its stacks on stderr and exit 1.
- A process forked inside produce() that returns from it (instead of exiting or exec'ing)
  ends there, so that it never runs the schedule a second time.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib.util
import logging
import os
import signal
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from pydantic import field_validator

from connector.fields import ConfigPath, Strict, not_a_file

__all__ = [
    "HARD_AFTER",
    "HUNG",
    "HUNG_AFTER",
    "ProduceHung",
    "Script",
    "ScriptConfig",
    "ScriptLoadError",
    "ScriptStop",
    "load_script",
]

log = logging.getLogger("connector.script")

HUNG_AFTER = 5.0  # seconds a stopping run waits for the produce() call in progress
HARD_AFTER = 10.0  # past the longest flush_timeout: a call no exception reaches ends it all
AGAIN_AFTER = 1.0  # ProduceHung again this often while a script swallows it
HUNG = "produce() did not return"  # how a stop reason starts when a call was cut short


class ScriptConfig(Strict):
    path: ConfigPath
    on_error: Literal["skip", "stop"] = "skip"

    @field_validator("path")
    @classmethod
    def _exists(cls, value: Path) -> Path:
        if (kind := not_a_file(value)) is not None:  # a FIFO would hang the load
            raise ValueError(f"script {value} is {kind}, not a file")
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


class ProduceHung(BaseException):
    """Raised inside a produce() call that a stopping run waited for in vain. A
    BaseException, so that a script's `except Exception` does not keep it."""

    def __init__(self, where: str):
        super().__init__(f"{HUNG} ({where})")
        self.where = where
        self.reason = str(self)


class Script:
    """A loaded script plus the accounting of its run-time errors."""

    def __init__(self, produce: Callable[[dict], Any], path: Path, on_error: str):
        self.produce = produce
        self.path = path
        self.on_error = on_error
        self.errors: Counter[str] = Counter()  # exception class or bad_return_type -> count
        self._seen: set[tuple[str, int]] = set()
        self._grace = 0.0
        self._alarm: Any = None  # SIGALRM's handler before the stop watch took it

    def follow(self, stream: Iterator, worker: int = 0, workers: int = 1) -> Iterator:
        """The ticks this script takes (worker `worker` of `workers`): all of them; a
        replay ends them with its recording."""
        return stream

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
        str or a list holding only str (subclasses included: `numpy.str_` is a str). What
        is returned is a new list of exact `str`s, taken at once: the script may change
        its list afterwards (from the next call, or a thread) without changing the events."""
        if type(result) is str:
            return [result]
        if issubclass(type(result), list):  # not isinstance: a faked __class__ is no list
            events = list.copy(result)  # one C call: no other thread runs in between
            for item in events:
                if type(item) is not str:
                    return self._odd_items(events)
            return events
        if issubclass(type(result), str):
            return [str.__str__(result)]  # a plain copy: no subclass method reaches an output
        self.bad_return(type(result).__name__)
        return []

    def _odd_items(self, events: list) -> list[str]:
        """A list with an item that is not exactly a str: subclasses become plain str, any
        other item drops the whole call."""
        for n, item in enumerate(events):
            if type(item) is str:
                continue
            if not issubclass(type(item), str):
                self.bad_return(f"a list holding {type(item).__name__}")
                return []
            events[n] = str.__str__(item)
        return events

    def raised(self, exc: BaseException) -> None:
        """Count and report what produce() raised; KeyboardInterrupt is passed on."""
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        if isinstance(exc, ProduceHung):  # the stop's grace ran out inside the call
            self.unwatch()
            self.errors["did_not_return"] += 1
            log.error(
                "produce() did not return within %gs of the stop, interrupted at %s; "
                "that call's events are lost, what came before is flushed",
                self._grace,
                exc.where,
            )
            return
        kind = type(exc).__name__
        self.errors[kind] += 1
        where = self._where(exc)
        message = f"produce() raised {kind}: {_text(exc)} at {where}"
        self._report((kind, where), message)

    def watch_stop(self, flush_timeouts: Sequence[float]) -> None:
        """At the first stop request, from the main thread (its signal handler): a
        produce() call still running when the grace is over gets ProduceHung raised inside
        it; a call that cannot take it ends the process (see the module's docstring)."""
        if self._alarm is not None:
            return
        self._grace = min([HUNG_AFTER, *flush_timeouts])
        self._alarm = signal.signal(signal.SIGALRM, self._on_alarm)
        signal.setitimer(signal.ITIMER_REAL, self._grace)
        hard = max([0.0, *flush_timeouts]) + HARD_AFTER
        faulthandler.dump_traceback_later(hard, exit=True, file=_stderr_fd())

    def unwatch(self) -> None:
        """The run is past produce() for good: the timers go, SIGALRM is the script's again."""
        if self._alarm is None:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, self._alarm)
        self._alarm = None

    def _on_alarm(self, _signum: int, frame: FrameType | None) -> None:
        where = self._inside(frame)
        if where is None:  # produce() has returned: the stopping run never calls it again
            self.unwatch()
            return
        signal.setitimer(signal.ITIMER_REAL, AGAIN_AFTER)  # if the script keeps this one
        raise ProduceHung(where)

    def _inside(self, frame: FrameType | None) -> str | None:
        """`file:line` of the script's innermost frame on the main thread's stack, if any
        (the script's file, or a helper module beside it)."""
        folder = str(self.path.parent)
        while frame is not None:
            name = frame.f_code.co_filename
            if os.path.dirname(name) == folder:
                return f"{os.path.basename(name)}:{frame.f_lineno}"
            frame = frame.f_back
        return None

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


def _stderr_fd() -> int:
    """Where a last-resort stack dump goes: stderr, or nowhere when it is closed."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return os.open(os.devnull, os.O_WRONLY)  # kept open: the dump may come at any time


def _text(exc: BaseException, limit: int = 500) -> str:
    """An exception's message, bounded; a hostile __str__ cannot break the report."""
    try:
        text = str(exc)
    except Exception:
        text = "(its message cannot be shown)"
    return text if len(text) <= limit else text[:limit] + "..."


_FOLDERS: set[str] = set()  # folders of the scripts loaded in this process


def _after_fork_in_child() -> None:
    """In a child forked inside produce() (or while the script loads): once the script's
    outermost frame returns, the child ends, so it never runs the schedule a second time.
    A child that exits or calls exec (multiprocessing, subprocess) never gets there."""
    frame, entry = sys._getframe(1), None
    while frame is not None:
        if os.path.dirname(frame.f_code.co_filename) in _FOLDERS:
            entry = frame  # keep walking: the outermost one is where the run called in
        frame = frame.f_back
    if entry is None:  # forked by the run's own code, or a library's: not ours to stop
        return

    def leave(frame: FrameType, event: str, _arg: Any) -> None:
        if frame is entry and event == "return":
            with contextlib.suppress(OSError):
                os.write(2, b"connector: a process forked inside produce() returned from it;"
                            b" it ends here (a forked child must exit or exec)\n")
            os._exit(0)

    sys.setprofile(leave)


def load_script(config: ScriptConfig) -> Script:
    path = config.path.resolve()
    if not path.is_file():
        raise ScriptLoadError(f"script not found: {path}")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # a helper module beside the script is importable
    if not _FOLDERS:
        os.register_at_fork(after_in_child=_after_fork_in_child)
    _FOLDERS.add(folder)
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
