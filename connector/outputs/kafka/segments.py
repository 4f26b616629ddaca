"""A transaction's segments: whole produce() calls handed over together, as sent into a
transaction (transactions.py), and how a call with a failed event is dropped whole."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from connector.delivery import Failure
from connector.outputs.kafka.errors import CALL_FAILED

__all__ = ["Segment"]


@dataclass(slots=True)
class Segment:
    """Whole produce() calls handed over together, as sent into a transaction."""

    events: list[str]
    times: list[int] | None  # each event's scheduled time (timestamp: scheduled)
    starts: list[int]  # where each call begins in `events`
    routes: list | None  # each event's (topic, key, headers, timestamp, value), when routed
    attempt: int = 1  # the transactions it has been sent in (twice at most)

    def call(self, i: int) -> int:
        """The index of the call event i belongs to."""
        return bisect.bisect_right(self.starts, i) - 1

    def drop(self, bad: dict[int, tuple[int, Failure]], acks: Any, topic: str) -> None:
        """Fail the calls in `bad` (call index -> (event index, why)) whole: the event at
        fault with its reason, the others of its call with CALL_FAILED. Keep the rest."""
        events, times, starts, routes = self.events, self.times, self.starts, self.routes
        kept: list[str] = []
        kept_times = None if times is None else []
        kept_starts: list[int] = []
        kept_routes = None if routes is None else []
        ends = [*starts[1:], len(events)]
        for k, (start, end) in enumerate(zip(starts, ends, strict=True)):
            if k in bad:
                at, why = bad[k]
                sibling = f"event {at - start} of the call: {why.reason}"
                for j in range(start, end):
                    if j == at:
                        acks.fail(why.reason, events[j], why.detail, topic=topic)
                    else:
                        acks.fail(CALL_FAILED, events[j], sibling, topic=topic)
                continue
            kept_starts.append(len(kept))
            kept += events[start:end]
            if kept_times is not None:
                kept_times += times[start:end]
            if kept_routes is not None:
                kept_routes += routes[start:end]
        self.events, self.times, self.starts = kept, kept_times, kept_starts
        self.routes = kept_routes
