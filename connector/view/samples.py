"""A run's RunStats as a series of small samples, in bounded memory.

A sample keeps cumulative counters only, so any two samples give the exact count between
them: dropping every other sample when the history is full (halving its resolution)
loses no event, only detail. A run of any length holds at most `capacity` samples.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from connector.stats import RunStats

__all__ = ["OutputSample", "Sample", "Samples"]


@dataclass(frozen=True, slots=True)
class OutputSample:
    delivered: int
    failed: int
    filtered: int
    pending: int
    committed: int | None  # transactional outputs only
    aborted: int | None


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # seconds since the sampling began
    calls: tuple[int, ...]  # per input: produce() calls (cumulative)
    timestamps: tuple[int, ...]  # per input (cumulative)
    events: tuple[int, ...]  # per input (cumulative)
    targets: tuple[float | None, ...]  # per input: scheduled timestamps/s now
    outputs: tuple[OutputSample, ...]
    lag: tuple[int, ...]  # schedule lag histogram's bucket counts (cumulative)
    behind: float
    checkpoints: int  # settled so far

    @classmethod
    def of(cls, t: float, s: RunStats) -> Sample:
        outputs = tuple(
            OutputSample(
                o.delivered,
                o.failed,
                o.filtered,
                o.pending,
                None if o.transactions is None else o.transactions["committed"],
                None if o.transactions is None else o.transactions["aborted"],
            )
            for o in s.outputs
        )
        return cls(
            t,
            tuple(s.calls),
            tuple(s.timestamps),
            tuple(s.events),
            tuple(s.target_rates),
            outputs,
            tuple(s.lag.counts),
            s.behind,
            s.checkpoints,
        )


class Samples:
    """The whole run at a resolution that halves as it grows, and the last `recent`
    samples at full resolution (the live view's sparklines)."""

    def __init__(self, capacity: int = 1800, recent: int = 61):
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = capacity
        self.stride = 1  # keep one sample in `stride`
        self._seen = 0
        self._history: list[Sample] = []
        self._recent: deque[Sample] = deque(maxlen=recent)
        self._last: Sample | None = None
        self._lock = threading.Lock()  # the sampler writes, the view and report read

    def add(self, sample: Sample) -> None:
        with self._lock:
            self._recent.append(sample)
            self._last = sample
            if self._seen % self.stride == 0:
                self._history.append(sample)
                if len(self._history) > self.capacity:
                    self._history = self._history[::2]
                    self.stride *= 2
            self._seen += 1

    def history(self) -> list[Sample]:
        """Every kept sample, and the latest one last (so the series ends at the totals)."""
        with self._lock:
            kept = list(self._history)
            if self._last is not None and (not kept or kept[-1] is not self._last):
                kept.append(self._last)
            return kept

    def recent(self) -> list[Sample]:
        with self._lock:
            return list(self._recent)

    @property
    def last(self) -> Sample | None:
        return self._last
