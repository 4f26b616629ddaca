"""Time, in one place: the run reads the clock it is given, so a live schedule of an hour
is tested in milliseconds with `connector.testing.FakeClock`."""

from __future__ import annotations

import time as _time
from datetime import datetime, tzinfo
from typing import Protocol

__all__ = ["SYSTEM", "Clock", "SystemClock"]


class Clock(Protocol):
    def time(self) -> float: ...  # wall clock, epoch seconds: when ticks are due
    def monotonic(self) -> float: ...  # deadlines and durations
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)
    sleep = staticmethod(_time.sleep)


SYSTEM: Clock = SystemClock()


def now(clock: Clock, tz: tzinfo | None) -> datetime:
    """The clock's wall time as an aware datetime in `tz`."""
    return datetime.fromtimestamp(clock.time(), tz)
