"""Config field types shared by several plugins."""

from __future__ import annotations

import os
import re
import stat
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationInfo

__all__ = ["ConfigPath", "FilePath", "Strict", "TimeSpec", "not_a_file", "resolve_time"]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_to_config(value: Path, info: ValidationInfo) -> Path:
    if "\0" in str(value):  # the OS refuses such a path, with a ValueError, not an OSError
        raise ValueError("a path cannot hold a NUL character")
    base = (info.context or {}).get("base_dir")
    value = Path(os.path.expanduser(value))
    return value if value.is_absolute() or base is None else Path(base) / value


ConfigPath = Annotated[Path, AfterValidator(_relative_to_config)]
"""A path; relative ones resolve against the config file's folder, not the working directory."""

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def not_a_file(path: Path | int) -> str | None:
    """What `path` (or an open descriptor) is when it exists and is not a regular file
    ("a FIFO (named pipe)", "a directory"...); None for a regular file, or nothing there.
    stat() never blocks, where open() on a FIFO without a writer waits for one."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # nothing there, or unreadable: opening it will say
        return None
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _regular_file(value: Path) -> Path:
    if (kind := not_a_file(value)) is not None:
        raise ValueError(f"{value} is {kind}, not a regular file")
    return value


FilePath = Annotated[Path, AfterValidator(_relative_to_config), AfterValidator(_regular_file)]
"""A ConfigPath the connector reads itself: a FIFO, a device, a directory or a socket is
refused when the config is validated (reading one could block for ever, or never end)."""


_PART = r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)"
_RELATIVE = re.compile(rf"^([+-])\s*((?:{_PART}\s*)+)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Times far enough from year 1 and 9999 that no zone's offset and no relative time
# carries them out of datetime's range when a run resolves them.
_MAX_RELATIVE = 1000 * 366 * 86400  # seconds
_YEARS = (2, 9998)


def _time_spec(value: Any) -> str | datetime:
    """`now`, `+1h` / `-1h30m` (relative to the run's start), or ISO-8601."""
    if isinstance(value, datetime):
        return _in_range(value)
    if not isinstance(value, str):
        raise ValueError("expected an ISO-8601 time, 'now', or a relative time like '+1h'")
    text = value.strip()
    if text in ("now", "never"):  # never: no end (as the seed's)
        return text
    if relative := _RELATIVE.match(text):
        if _seconds(relative.group(2)) > _MAX_RELATIVE:
            raise ValueError(f"relative time '{value}' is more than 1000 years away")
        return text
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"invalid time '{value}': use ISO-8601 like 2026-02-20T10:00:00+00:00, "
            "'now', or a relative time like '+1h', '-30m', '+90s'"
        ) from None
    return _in_range(when)


def _in_range(when: datetime) -> datetime:
    if not _YEARS[0] <= when.year <= _YEARS[1]:
        raise ValueError(f"time {when.isoformat()} is outside the years {_YEARS[0]} to {_YEARS[1]}")
    return when


def _seconds(parts: str) -> float:
    return sum(float(n) * _UNITS[unit] for n, unit in re.findall(_PART, parts))


TimeSpec = Annotated[str | datetime, BeforeValidator(_time_spec)]


def resolve_time(spec: str | datetime, now: datetime, tz: ZoneInfo) -> datetime:
    """Turn a TimeSpec into an aware datetime; naive ISO times are read in the config's zone."""
    if isinstance(spec, datetime):
        return (spec if spec.tzinfo else spec.replace(tzinfo=tz)).astimezone(tz)
    if spec == "now":
        return now.astimezone(tz)
    sign, parts = _RELATIVE.match(spec).group(1, 2)
    delta = timedelta(seconds=_seconds(parts))
    return (now + delta if sign == "+" else now - delta).astimezone(tz)
