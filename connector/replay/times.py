"""Recorded times read and rewritten: ISO-8601 strings and epoch numbers (their unit
told by their size, as a log pipeline would), nanoseconds for OTLP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

__all__ = ["EPOCH", "from_nanos", "nanos", "read_time", "write_time"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# an epoch number's unit by its size: past these it is ms, us, ns (up to year ~5138 in s)
_UNITS = ((1e17, 1_000_000_000), (1e14, 1_000_000), (1e11, 1_000), (0, 1))


def read_time(value: object, tz: tzinfo) -> datetime | None:
    """An aware datetime from an ISO-8601 string (naive: in `tz`) or an epoch number;
    None when the value is no time."""
    if value.__class__ is str:
        try:
            when = datetime.fromisoformat(value)  # type: ignore[arg-type]
        except ValueError:
            return None
        return when if when.tzinfo else when.replace(tzinfo=tz)
    if value.__class__ in (int, float):
        per_second = next(per for above, per in _UNITS if abs(value) >= above)  # type: ignore[arg-type]
        try:
            return EPOCH + timedelta(microseconds=round(value * 1_000_000 / per_second))  # type: ignore[operator]
        except (OverflowError, ValueError):
            return None
    return None


def write_time(old: object, new: datetime) -> object:
    """`new` written as `old` was: an ISO string, or an epoch number in the same unit."""
    if old.__class__ is str:
        return new.isoformat()
    micros = nanos(new) // 1000
    per_second = next(per for above, per in _UNITS if abs(old) >= above)  # type: ignore[arg-type]
    if old.__class__ is int:
        return micros * per_second // 1_000_000
    return micros * per_second / 1_000_000


def nanos(when: datetime) -> int:
    """Unix nanoseconds, exactly (datetime holds microseconds)."""
    delta = when - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def from_nanos(value: int, tz: tzinfo = UTC) -> datetime:
    return (EPOCH + timedelta(microseconds=value // 1000)).astimezone(tz)
