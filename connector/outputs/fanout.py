"""Every handle at once: what the pipeline does to all its outputs in one step.

A batch is built once per hand-off (`Fanout.batch`: the events, and each event's time,
the call starts and the position when some output takes them), each `when` rule selects
its part once (`Router`), and every handle gets its part. A failure of one output stays
with its handle; what it means for the run (a fenced output, every output broken) goes
to the run through `RunLog.halt`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from connector.outputs.base import Batch, parse_event
from connector.outputs.handle import OutputHandle, RunLog

if TYPE_CHECKING:
    from connector.checkpoint import PositionStore
    from connector.clock import Clock
    from connector.stats import OutputStats

__all__ = ["Fanout", "Router", "event_times", "starts_of"]


class Fanout:
    def __init__(self, handles: list[OutputHandle], run: RunLog):
        self.handles, self.run = handles, run
        self.router = Router(handles)
        self.times = any(h.caps.times for h in handles)
        self.calls = any(h.caps.calls for h in handles)  # never half a call
        self.positional = any(h.caps.transactional for h in handles)
        self.marks = self.times or self.calls  # the loop notes where each call begins
        # per handle: its write, and its view when a batch carries what it does not take
        self._plan = [
            (
                h.write,
                h.view
                if (self.times and not h.caps.times)
                or (self.calls and not h.caps.calls)
                or (self.positional and not h.caps.transactional)
                else None,
            )
            for h in handles
        ]

    def start(self, stopping: list[str]) -> bool:
        """True when every output started (the first stop request ends the starting)."""
        for handle in self.handles:
            if stopping:
                break
            handle.start(self.run)
        return not any(handle.could_not_start for handle in self.handles)

    def hand_off(
        self,
        events: list[str],
        marks: list | None,
        position: dict | None,
        check: Callable[[Batch, list[Batch] | None], None] | None = None,
    ) -> None:
        """One batch to every handle: built once (with each event's time and the call
        starts when an output takes them, `marks` being (first event, timestamp) per call),
        selected once per `when` rule, shown to `check` (the trace check), then handed.
        One output that raises breaks alone; the others still get the batch."""
        n = len(events)
        if marks is None:
            batch = Batch(events, None, None, position)
        else:
            times = event_times(marks, n) if self.times else None
            starts = sorted({first for first, _ in marks if first < n}) if self.calls else None
            batch = Batch(events, times, starts, position)
        chosen = self.router.select(batch) if self.router.active else None
        if check is not None:
            check(batch, chosen)
        k = -1
        try:
            for k, (write, view) in enumerate(self._plan):
                part = batch if chosen is None else chosen[k]
                if not write(part if view is None else view(part), n):
                    self._failed(self.handles[k])
        except KeyboardInterrupt:  # a second signal: the outputs after k never see the batch
            if k >= 0:  # nor k itself, when the signal came before its write() began
                part = batch if chosen is None else chosen[k]
                if self.handles[k].seen is not part.events:
                    k -= 1
            for j in range(k + 1, len(self.handles)):
                self.handles[j].not_sent(batch if chosen is None else chosen[j], n)
            raise

    def poll(self) -> None:
        for handle in self.handles:
            if not handle.poll():
                self.run.halt(handle.fatal or "")

    def settle(self, timeout: float) -> bool:
        """Wait for every acknowledgement; True when nothing is pending any more."""
        for handle in self.handles:
            if not handle.settle(timeout):
                self.run.halt(handle.fatal or "")
        return all(handle.acks.pending <= 0 for handle in self.handles)

    def stop(self, now: float) -> None:
        for handle in self.handles:
            handle.stop(now)

    def probe(self) -> None:
        for handle in self.handles:
            handle.probe()

    def shutdown(self, clock: Clock) -> None:
        for handle in self.handles:
            handle.shutdown(self.run, clock)

    def positions(self) -> list[PositionStore | None]:
        return [handle.positions() for handle in self.handles]

    def stats(self) -> list[OutputStats]:
        return [handle.stats() for handle in self.handles]

    def _failed(self, handle: OutputHandle) -> None:
        if handle.fatal is not None:
            self.run.halt(handle.fatal)
        elif all(h.broken is not None for h in self.handles):
            self.run.halt("every output is broken")


class Router:
    """Per handle, what its `when` rule selects of a batch (the batch itself without a
    rule). Each event is parsed once whatever the number of rules; equal rules select once."""

    def __init__(self, handles: list[OutputHandle]):
        self.rules = [h.rule for h in handles]
        self.active = any(rule is not None for rule in self.rules)

    def select(self, batch: Batch) -> list[Batch]:
        events, times, starts = batch.events, batch.times, batch.call_starts
        docs = batch.docs = list(map(parse_event, events))  # shared with the outputs
        done: dict[tuple, Batch] = {}
        selected = []
        for rule in self.rules:
            if rule is None:
                selected.append(batch)
                continue
            key, match = rule
            if key not in done:
                keep = [i for i, doc in enumerate(docs) if match(doc)]
                if len(keep) == len(events):
                    done[key] = batch
                else:
                    done[key] = Batch(
                        [events[i] for i in keep],
                        None if times is None else [times[i] for i in keep],
                        starts_of(keep, starts),
                        batch.position,
                        [docs[i] for i in keep],
                    )
            selected.append(done[key])
        return selected


def starts_of(keep: list[int], starts: list[int] | None) -> list[int] | None:
    """The call starts among the kept events: where a kept event's call differs from the
    previous kept event's."""
    if starts is None:
        return None
    out, call, last = [], -1, None
    for j, i in enumerate(keep):
        while call + 1 < len(starts) and starts[call + 1] <= i:
            call += 1
        if call != last:
            out.append(j)
            last = call
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def event_times(marks: list[tuple[int, datetime]], n: int) -> list[int]:
    """Each event's scheduled time in epoch milliseconds, from the calls' marks: (index of
    the call's first event in the batch, its timestamp) per call."""
    times: list[int] = []
    for (first, ts), (following, _) in zip(marks, [*marks[1:], (n, None)], strict=False):
        times += [(ts - _EPOCH) // _MS] * (min(following, n) - first)
    return times
