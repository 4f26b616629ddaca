"""Logging to stderr as text or JSON, with secrets redacted and repeats rate-limited."""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["add_secret", "setup_logging"]

_SECRETS: set[str] = set()


def add_secret(value: str) -> None:
    """Never let this value reach a log line (a password, a token)."""
    if value and len(value) >= 3:
        _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = redact(record.getMessage())
            record.args = None
        return True


class _RateLimit(logging.Filter):
    """The same message within `window` seconds is counted, then reported once with the count."""

    def __init__(self, window: float = 10.0):
        super().__init__()
        self.window = window
        self.last: dict[str, list] = {}  # message -> [first time, suppressed count]

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
            record.msg = f"{key} (repeated {seen[1]} more times in {self.window:g}s)"
            record.args = None
        self.last[key] = [now, 0]
        return True


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
        return json.dumps(entry)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _Json()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(_Redact())
    handler.addFilter(_RateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
