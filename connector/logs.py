"""Logging to stderr as text or JSON, with secrets redacted and repeats rate-limited."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONNECTING",
    "LogSetup",
    "QuietStream",
    "UpTheLink",
    "add_secret",
    "add_url_secrets",
    "flush_repeats",
    "secrets",
    "setup_logging",
]

CONNECTING = "connector.connecting"  # "connecting to ..." while outputs start; --quiet hides it

_SECRETS: set[str] = set()


def add_secret(value: str) -> None:
    """Never let this value reach a log line (a password, a token)."""
    if value and len(value) >= 3:
        _SECRETS.add(value)


def add_url_secrets(url: str) -> None:
    """The password of a URL's user info (`https://user:password@host`): never logged."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        add_secret(password)
        add_secret(unquote(password))


def secrets() -> list[str]:
    """The values registered so far (a worker process starts with its parent's)."""
    return sorted(_SECRETS)


def redact(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


class _RateLimit(logging.Filter):
    """The same warning within `window` seconds is counted, then reported once with the count."""

    def __init__(self, window: float = 10.0, remember: int = 1000):
        super().__init__()
        self.window = window
        self.remember = remember
        self.last: dict[str, list] = {}  # message -> [first time, suppressed, a record]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = record.getMessage()
        now = time.monotonic()
        seen = self.last.get(key)
        if seen is not None and now - seen[0] < self.window:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg, record.args = _repeated(key, seen[1], self.window), None
        if len(self.last) >= self.remember:  # bounded: forget the oldest
            self.last.pop(next(iter(self.last)))
        self.last[key] = [now, 0, record]
        return True

    def pending(self) -> list[logging.LogRecord]:
        """Records for the repeats still unreported (at shutdown)."""
        out = []
        for key, (_, count, record) in self.last.items():
            if count:
                copy = logging.makeLogRecord(record.__dict__)
                copy.msg, copy.args = _repeated(key, count, self.window), None
                out.append(copy)
        self.last.clear()
        return out


def _repeated(message: str, count: int, window: float) -> str:
    return f"{message} (repeated {count} more time(s) within {window:g}s)"


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))  # tracebacks included


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry))


_GONE = (AttributeError, OSError, ValueError)  # no stream, a failed write, a closed file


class QuietStream(io.TextIOBase):
    """stderr as the run uses it: a write that cannot be made (a full disk, a reader gone,
    no stderr at all) is dropped instead of raised, so what stderr can take changes
    nothing in the run or its exit code, the script's own writes to it included."""

    def __init__(self, stream: Any):
        self.stream = stream  # None when the process started with stderr closed

    def write(self, text: str) -> int:
        with contextlib.suppress(*_GONE):
            self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(*_GONE):
            self.stream.flush()

    def fileno(self) -> int:  # for faulthandler; io.UnsupportedOperation without one
        if self.stream is None:
            raise io.UnsupportedOperation("stderr is closed")
        return self.stream.fileno()

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except _GONE:
            return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "errors", None) or "backslashreplace"


class UpTheLink(io.TextIOBase):
    """A worker's stderr while its parent shows the live view: whole lines go up the link
    and the parent prints them above the view (a worker writing to the terminal itself
    would tear it). `under` is the stream it stands in for."""

    def __init__(self, send: Callable[[tuple], None], under: Any):
        self.send, self.under, self.partial = send, under, ""

    def write(self, text: str) -> int:
        lines, newline, self.partial = (self.partial + text).rpartition("\n")
        if newline:
            self.send(("stderr", lines + newline))
        return len(text)

    def flush(self) -> None:
        if self.partial:
            text, self.partial = self.partial, ""
            self.send(("stderr", text))

    def fileno(self) -> int:  # faulthandler writes to the descriptor itself
        return self.under.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


def quiet_stderr() -> None:
    """Make sys.stderr a QuietStream, and give a closed standard descriptor (`2>&-`)
    /dev/null: else the next file opened would take its number, and a library writing
    to stderr would write into an output's file."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if not isinstance(sys.stderr, QuietStream):
        sys.stderr = QuietStream(sys.stderr)


_limit = _RateLimit()
_handler: logging.Handler | None = None


@dataclass(frozen=True)
class LogSetup:
    """How the parent set up logging: a worker process repeats it exactly."""

    level: str = "info"
    fmt: str = "text"
    quiet: bool = False
    secrets: tuple[str, ...] = ()
    up_the_link: bool = False  # the parent shows the live view: stderr goes through it

    def apply(self) -> None:
        for value in self.secrets:
            add_secret(value)
        setup_logging(self.level, self.fmt, self.quiet)


def setup_logging(level: str = "info", fmt: str = "text", quiet: bool = False) -> None:
    global _handler, _limit
    quiet_stderr()
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(
        _Json() if fmt == "json" else _Text("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    _limit = _RateLimit()
    _handler.addFilter(_limit)
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level.upper())
    logging.getLogger(CONNECTING).setLevel(logging.WARNING if quiet else logging.NOTSET)


def flush_repeats() -> None:
    """Report the counts of repeated messages the rate limit held back."""
    if _handler is not None:
        for record in _limit.pending():
            _handler.handle(record)
