"""`--max-events` and `--duration`: where a run stops by itself.

--max-events makes the last batch short, and cuts what the last call made past the limit
(all of that call when an output keeps calls whole). --duration counts from the anchor,
the moment every output is ready: live mode cuts its schedule exactly there and lingers
until then; backfill stops at the first hand-off past it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime

from connector.clock import Clock

__all__ = ["Limits"]


class Limits:
    def __init__(
        self, max_events: int | None, duration: float | None, batch_size: int, clock: Clock
    ):
        self.max_events, self.duration, self.batch_size = max_events, duration, batch_size
        self.clock = clock
        self.deadline: float | None = None  # clock.monotonic() of the --duration end
        self.cut: list[bool] = []  # live: the schedule was cut at the --duration end

    @property
    def events_reached(self) -> str:
        return f"--max-events {self.max_events} reached"

    @property
    def duration_reached(self) -> str:
        return f"--duration {self.duration:g}s reached"

    def anchor(
        self, anchor: datetime, stream: Iterator[tuple[datetime, int]], live: bool
    ) -> Iterator[tuple[datetime, int]]:
        """The deadline counts from `anchor`; live, no timestamp at or past it is run,
        whatever the lag."""
        if not self.duration:
            return stream
        end = anchor.timestamp() + self.duration
        self.deadline = self.clock.monotonic() + (end - self.clock.time())
        if not live:
            return stream
        return itertools.takewhile(lambda tick: self._before(tick, end), stream)

    def _before(self, tick: tuple[datetime, int], end: float) -> bool:
        if tick[0].timestamp() < end:
            return True
        self.cut.append(True)
        return False

    def next_batch(self, produced: int) -> int:
        """Events until the next hand-off: the batch size, or fewer to stop at the limit
        (0 or less: the limit is reached)."""
        if self.max_events is None:
            return self.batch_size
        return min(self.batch_size, self.max_events - produced)

    def excess(self, produced: int) -> int:
        """Events produced past --max-events."""
        if self.max_events is None:
            return 0
        return max(0, produced - self.max_events)

    def past_deadline(self) -> bool:
        return self.deadline is not None and self.clock.monotonic() >= self.deadline

    def wall_deadline(self) -> float:
        """The deadline on the wall clock (what the live loop waits for)."""
        return self.clock.time() + self.deadline - self.clock.monotonic()
