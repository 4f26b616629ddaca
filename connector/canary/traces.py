"""The live canary of an otlp traces output: every `every` seconds it takes the spans of
the next `sample` traces the endpoint accepted, waits `delay`, and asks the trace store
(`query`) for each trace until its spans are all there (found), or `timeout` after its
acceptance: missing when the store has none of it, incomplete when some spans are not
there. In a thread of its own; the sender thread only hands it batches while it asks."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from connector.canary.config import TraceCanaryConfig
from connector.canary.loop import CanaryLoop

__all__ = ["TraceCanary"]


@dataclass(slots=True)
class _Trace:
    trace_id: bytes
    spans: set[bytes]
    acked: float
    due: float = 0.0  # time.monotonic() of its next query
    wait: float = 0.25  # the wait after a query that did not settle it, doubled each time

# A trace the store does not hold yet is asked again 0.25 s later, then 0.5, 1 and every
# 2 s: the time to visible stays close to exact while a slow store costs few queries.
_MOST = 2.0


class TraceCanary(CanaryLoop):
    def __init__(self, config: TraceCanaryConfig, acks):
        from connector.verify.traces import TraceQuery  # only canary users import it

        super().__init__(config, acks, ("found", "missing", "incomplete"), "trace-canary")
        self.query = TraceQuery(config.query, config.backend)

    def accepted(self, items: list) -> None:
        """A batch the endpoint took whole (the sender's thread)."""
        if self.want <= 0:
            return
        traces: dict[bytes, set[bytes]] = defaultdict(set)
        for _, trace_id, span in items:
            if trace_id in traces or len(traces) < self.want:
                traces[trace_id].add(span[20:28])  # see otlp_recording.py
        self.want -= len(traces)
        now = time.monotonic()
        self._hand([_Trace(t, s, now) for t, s in traces.items()])

    def _round(self, waiting: list[_Trace], now: float) -> list[_Trace]:
        delay = self.config.delay
        return [
            t for t in waiting if now - t.acked < delay or now < t.due or not self._check(t, now)
        ]

    def _check(self, trace: _Trace, now: float) -> bool:
        """True once the trace has a result; else its next query is set."""
        try:
            held = self.query.get(trace.trace_id)
        except Exception:  # an unreachable store: the trace waits, then times out
            held = None
        late = time.monotonic() - trace.acked >= self.config.timeout
        if held is not None and trace.spans <= held:
            self._found(trace.acked)
            return True
        if late:
            self.acks.canary["missing" if held is None else "incomplete"] += 1
            return True
        trace.due, trace.wait = now + trace.wait, min(trace.wait * 2, _MOST)
        return False
