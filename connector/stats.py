"""One view of a run: the counters every reader (summary, /metrics, health, progress) uses.

A `Pipeline` and each worker process produce a `RunStats`; `Workers` merges
them. The readers take nothing else, so one process or many look the same.
This module imports nothing of the connector: everything may import it.
"""

from __future__ import annotations

import copy
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LAG_BUCKETS", "Histogram", "OutputStats", "RunStats"]

LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Histogram:
    """A lock-free histogram for the hot path; read by the collector when scraped."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: value <= bound
        self.sum += value

    def observe_many(self, value: float, times: int) -> None:
        self.counts[bisect_left(self.bounds, value)] += times
        self.sum += value * times

    def add(self, counts: list[int], total: float) -> None:
        """Fold in another histogram's bucket counts and sum."""
        self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
        self.sum += total

    def copy(self) -> Histogram:
        other = Histogram(self.bounds)
        other.counts, other.sum = list(self.counts), self.sum
        return other

    def __getstate__(self) -> tuple:  # sent between processes inside a RunStats
        return self.bounds, self.counts, self.sum

    def __setstate__(self, state: tuple) -> None:
        self.bounds, self.counts, self.sum = state

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (inf when past the last bound)."""
        total, seen = self.count, 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += n
            if total and seen >= q * total:
                return bound
        return 0.0

    def buckets(self) -> list[tuple[str, int]]:
        out, seen = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), seen))
        return out


@dataclass
class OutputStats:
    """One output's accounts and state."""

    name: str
    plugin: str
    latency: Histogram
    handed: int = 0
    delivered: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    started: bool = False  # start() returned
    ready: bool = False  # started, and the last ready() check said so
    could_not_start: str | None = None  # start()'s reason
    broken: str | None = None  # write_batch raised: later batches fail for it
    dead_letter_lost: int = 0  # failures whose dead-letter record could not be written
    # transactional outputs only (else None): "committed"/"aborted" counts, commit durations
    transactions: Counter[str] | None = None
    transaction_seconds: Histogram | None = None
    filtered: int = 0  # events its `when` rule kept from it (never handed over)
    routed: bool = False  # it has a `when` rule
    # its live canary's (else None): checks by result, acknowledgement -> readable seconds
    verify_checked: Counter[str] | None = None
    verify_visible: Histogram | None = None

    @property
    def pending(self) -> int:
        return self.handed - self.delivered - self.failed

    @classmethod
    def of(cls, acks: Any, transactional: bool = False, **state: Any) -> OutputStats:
        """A copy of an output's `Acks` (read from another thread: copies, no iteration
        of a dict a callback may be growing)."""
        transactions = acks.transactions if transactional else None
        seconds = acks.transaction_seconds if transactional else None
        return cls(
            acks.name,
            acks.plugin,
            acks.latency.copy(),
            acks.handed,
            acks.delivered,
            acks.failed,
            Counter(dict(acks.reasons)),
            **state,
            dead_letter_lost=acks.dead_letter_lost,
            transactions=None if transactions is None else Counter(dict(transactions)),
            transaction_seconds=None if seconds is None else seconds.copy(),
            filtered=acks.filtered,
            routed=acks.routed,
            verify_checked=None if acks.canary is None else Counter(dict(acks.canary)),
            verify_visible=None if acks.canary_seconds is None else acks.canary_seconds.copy(),
        )

    def merge(self, other: OutputStats) -> OutputStats:
        latency = self.latency.copy()
        latency.add(other.latency.counts, other.latency.sum)
        return OutputStats(
            self.name,
            self.plugin,
            latency,
            self.handed + other.handed,
            self.delivered + other.delivered,
            self.failed + other.failed,
            self.reasons + other.reasons,
            self.started and other.started,
            self.ready and other.ready,
            self.could_not_start or other.could_not_start,
            self.broken or other.broken,
            self.dead_letter_lost + other.dead_letter_lost,
            _add(self.transactions, other.transactions),
            _add_histogram(self.transaction_seconds, other.transaction_seconds),
            self.filtered + other.filtered,
            self.routed or other.routed,
            _add(self.verify_checked, other.verify_checked),
            _add_histogram(self.verify_visible, other.verify_visible),
        )


def _add(a: Counter[str] | None, b: Counter[str] | None) -> Counter[str] | None:
    if a is None or b is None:
        return b if a is None else a
    return a + b


def _add_histogram(a: Histogram | None, b: Histogram | None) -> Histogram | None:
    if a is None or b is None:
        return b if a is None else a
    total = a.copy()
    total.add(b.counts, b.sum)
    return total


def _first(a: str | None, b: str | None) -> str | None:
    return a if a is not None else b


@dataclass
class RunStats:
    """Counters, histograms, stall time and how the run ended: a plain, picklable value."""

    mode: str
    input_names: list[str]
    counts: list[int]  # per input: produce() calls per timestamp
    lag: Histogram
    outputs: list[OutputStats]
    calls: list[int] = field(default_factory=list)  # produce() calls, per input
    events: list[int] = field(default_factory=list)  # events produced, per input
    script_errors: Counter[str] = field(default_factory=Counter)
    script_stopped: bool = False  # on_error: stop ended the run
    started: float = 0.0  # time.monotonic()
    finished: float = 0.0
    alive: bool = True
    starting: bool = True  # outputs still connecting: no schedule yet
    stalled: float = 0.0  # seconds without a produce() call (waits not counted)
    stop_reason: str | None = None
    interrupted: bool = False  # a second signal cut the waiting short
    problems: list[str] = field(default_factory=list)  # a worker died, a pipeline error...
    bugs: list[str] = field(default_factory=list)  # tracebacks of ours, shown after the summary
    traces: list | None = None  # TraceReport per checked trace (check_traces), else None
    unreadable_spans: int = 0
    # per input: timestamps per second it is scheduled to emit now (rate inputs), else None
    target_rates: list[float | None] = field(default_factory=list)
    behind: float = 0.0  # live: seconds the run is behind its schedule right now
    replayed: int = 0  # produce() calls replayed unsent to resume from a checkpoint
    exhausted: bool = False  # the schedule ran to its end
    checkpoints: int = 0  # --checkpoint: checkpoints settled
    checkpoint_seconds: float = 0.0  # the time they waited (what they cost)

    def __post_init__(self) -> None:
        n = len(self.input_names)
        self.calls = self.calls or [0] * n
        self.events = self.events or [0] * n
        self.target_rates = self.target_rates or [None] * n

    @property
    def timestamps(self) -> list[int]:
        """Per input: `count` calls make one timestamp."""
        return [-(-c // n) for c, n in zip(self.calls, self.counts, strict=True)]

    @property
    def produced(self) -> int:
        return sum(self.events)

    @property
    def could_not_start(self) -> bool:
        return any(o.could_not_start is not None for o in self.outputs)

    def exit_code(self) -> int:
        """0 only when every event was delivered and no script error happened."""
        clean = not (
            self.script_errors
            or self.script_stopped
            or self.interrupted
            or self.problems
            or self.bugs
            or any(o.failed or o.pending or o.could_not_start or o.broken for o in self.outputs)
        )
        return 0 if clean else 1

    def snapshot(self) -> RunStats:
        """An independent copy (to send to another process, or to keep)."""
        return copy.deepcopy(self)

    def merge(self, other: RunStats) -> RunStats:
        """The sum of two runs of one config (two workers): counters add up, a state holds
        for the whole only when it holds for both, the first reason wins."""
        lag = self.lag.copy()
        lag.add(other.lag.counts, other.lag.sum)
        traces = None
        if self.traces is not None or other.traces is not None:
            traces = [*(self.traces or []), *(other.traces or [])]
        return RunStats(
            mode=self.mode,
            input_names=list(self.input_names),
            counts=list(self.counts),
            lag=lag,
            outputs=[a.merge(b) for a, b in zip(self.outputs, other.outputs, strict=True)],
            calls=[a + b for a, b in zip(self.calls, other.calls, strict=True)],
            events=[a + b for a, b in zip(self.events, other.events, strict=True)],
            script_errors=self.script_errors + other.script_errors,
            script_stopped=self.script_stopped or other.script_stopped,
            started=min(self.started, other.started),
            finished=max(self.finished, other.finished),
            alive=self.alive or other.alive,
            starting=self.starting or other.starting,
            stalled=max(self.stalled, other.stalled),
            stop_reason=_first(self.stop_reason, other.stop_reason),
            interrupted=self.interrupted or other.interrupted,
            problems=[*self.problems, *other.problems],
            bugs=[*self.bugs, *other.bugs],
            traces=traces,
            unreadable_spans=self.unreadable_spans + other.unreadable_spans,
            target_rates=[
                a if b is None else b if a is None else a + b
                for a, b in zip(self.target_rates, other.target_rates, strict=True)
            ],
            behind=max(self.behind, other.behind),
            replayed=self.replayed + other.replayed,
            exhausted=self.exhausted and other.exhausted,
            checkpoints=self.checkpoints + other.checkpoints,
            checkpoint_seconds=self.checkpoint_seconds + other.checkpoint_seconds,
        )
