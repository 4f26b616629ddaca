"""The pipeline's snapshot: what it has produced, and its RunStats built from its counters
(the one view the summary, metrics and progress read). A part of `Pipeline`."""

from __future__ import annotations

from collections import Counter

from connector.clock import now as clock_now
from connector.stats import RunStats

__all__ = ["Snapshot"]


class Snapshot:
    """Pipeline's counters read: produced, replayed, and the snapshot."""

    @property
    def events(self) -> list[int]:
        """Events produced, per input. The hot loop counts calls, and only for a call that
        does not return exactly one event does it note the difference in `extra`."""
        return [c + x for c, x in zip(self.calls, self.extra, strict=True)]

    @property
    def produced(self) -> int:
        return sum(self.events)

    @property
    def replayed(self) -> int:  # produce() calls replayed unsent to resume
        return 0 if self.checkpoints is None else self.checkpoints.replayed

    def snapshot(self) -> RunStats:
        """This run's RunStats, copied (safe from any thread)."""
        checker, plan, pace = self.checker, self.schedule, self._pace
        if plan is None:
            rates: list[float | None] = [None] * len(self.config.input)
        else:  # once the run is over, nothing is scheduled any more
            now = clock_now(self.clock, self.config.tz) if self.alive else None
            rates = plan.target_rates(now, self.options.identity.workers)
        calls, now = sum(self.calls) + self.replayed, self.clock.monotonic()
        if calls != self._seen[0] or self.waiting or pace.sleeping or not self._seen[1]:
            self._seen = (calls, now)  # stalled: seconds without a produce() call
        return RunStats(
            mode=self.options.mode,
            input_names=list(self.input_names),
            counts=[e.settings.count for e in self.config.input],
            lag=pace.lag.copy(),
            outputs=self._fan.stats(),
            calls=list(self.calls),
            events=self.events,
            script_errors=Counter(dict(self.script.errors)),
            script_stopped=self.script_stopped,
            started=self.started,
            finished=self.finished,
            alive=self.alive,
            starting=self.starting,
            stalled=now - self._seen[1] if self.alive else 0.0,
            stop_reason=self.stop_reason,
            interrupted=self.interrupted,
            problems=list(self.problems),
            bugs=list(self.bugs),
            traces=None if checker is None else list(checker.reports),
            unreadable_spans=0 if checker is None else checker.unreadable,
            target_rates=rates,
            behind=pace.behind() if self.options.mode == "live" and self.alive else 0.0,
            replayed=self.replayed,
            exhausted=self.exhausted,
            checkpoints=0 if self.checkpoints is None else self.checkpoints.taken,
            checkpoint_seconds=0.0 if self.checkpoints is None else self.checkpoints.spent,
        )
