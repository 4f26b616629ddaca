"""Live mode's pace: each tick runs when the run's clock reaches it.

Before a tick that is not due yet, the pipeline calls `wait_until(due)`: it sleeps on the
clock in short steps, serving the outputs meanwhile (acknowledgements, a transaction that
is due to commit), and gives up when the run is told to stop or passes --duration. The
pacer also keeps what the metrics show of the pace: each tick's lag, and how far behind
its schedule the run is right now.
"""

from __future__ import annotations

from collections.abc import Callable

from connector.clock import Clock
from connector.stats import LAG_BUCKETS, Histogram

__all__ = ["Pacer"]


class Pacer:
    def __init__(
        self,
        clock: Clock,
        poll: Callable[[], None],
        stop: list[str],
        past_deadline: Callable[[], bool],
    ):
        self.clock, self.poll, self.stop, self.past_deadline = clock, poll, stop, past_deadline
        self.lag = Histogram(LAG_BUCKETS)  # seconds each tick ran after it was due
        self.due = 0.0  # the last tick's due time (wall clock); set by the pipeline's loop
        self.awaiting: float | None = None  # the due time wait_until() waits for

    @property
    def sleeping(self) -> bool:
        """Waiting for the clock: on schedule, not behind, no stall. An output served in
        the wait that blocks past the awaited tick (no room) is behind, not asleep."""
        due = self.awaiting
        return due is not None and self.clock.time() < due

    def wait_until(self, due: float) -> bool:
        """Sleep until `due` (wall clock), serving outputs; False when told to stop."""
        self.awaiting = due
        try:
            while True:
                self.poll()
                left = due - self.clock.time()
                if self.stop:
                    return False
                if left <= 0:  # due: it runs, even a little past the deadline (live mode
                    return True  # cuts its schedule at the --duration end exactly)
                if self.past_deadline():
                    return False
                self.clock.sleep(min(left, 0.1))
        finally:
            self.awaiting = None

    def behind(self) -> float:
        """Seconds the run is behind its schedule now: past the tick it waits for, or
        (running) past the last tick's due time."""
        due = self.due if self.awaiting is None else self.awaiting
        if not due:
            return 0.0
        return max(0.0, self.clock.time() - due)
