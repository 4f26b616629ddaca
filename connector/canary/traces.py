"""The live canary of an otlp traces output: every `every` seconds it takes the spans of
the next `sample` traces the endpoint accepted, waits `delay`, and asks the trace store
(`query`) for each trace until its spans are all there (found), or `timeout` after its
acceptance: missing when the store has none of it, incomplete when some spans are not
there. In a thread of its own; the sender thread only hands it batches while it asks."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from connector.canary.config import TraceCanaryConfig
from connector.canary.kafka import VISIBLE_BUCKETS
from connector.stats import Histogram

__all__ = ["TraceCanary"]

log = logging.getLogger("connector.canary")


@dataclass(slots=True)
class _Trace:
    trace_id: bytes
    spans: set[bytes]
    acked: float


class TraceCanary:
    def __init__(self, config: TraceCanaryConfig, acks):
        from connector.verify.traces import TraceQuery  # only canary users import it

        self.config, self.acks = config, acks
        self.query = TraceQuery(config.query, config.backend)
        acks.canary = Counter({"found": 0, "missing": 0, "incomplete": 0})
        acks.canary_seconds = Histogram(VISIBLE_BUCKETS)
        self.want = 0
        self._taken: list[_Trace] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trace-canary", daemon=True)

    def accepted(self, items: list) -> None:
        """A batch the endpoint took whole (the sender's thread)."""
        if self.want <= 0:
            return
        traces: dict[bytes, set[bytes]] = defaultdict(set)
        for (_, trace_id, span), _ in items:
            if trace_id in traces or len(traces) < self.want:
                traces[trace_id].add(span[20:28])  # see otlp_recording.py
        self.want -= len(traces)
        now = time.monotonic()
        with self._lock:
            self._taken += [_Trace(t, s, now) for t, s in traces.items()]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        waiting: list[_Trace] = []
        next_sample = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_sample:
                    self.want = self.config.sample
                    next_sample = now + self.config.every
                with self._lock:
                    waiting += self._taken
                    self._taken = []
                keep = []
                for trace in waiting:
                    if now - trace.acked < self.config.delay or not self._check(trace):
                        keep.append(trace)
                waiting = keep
                self._stop.wait(0.2)
        except Exception:  # the canary never takes the run down
            log.exception("the canary of output %s stopped", self.acks.name)

    def _check(self, trace: _Trace) -> bool:
        """True once the trace has a result."""
        try:
            held = self.query.get(trace.trace_id)
        except Exception:  # an unreachable store: the trace waits, then times out
            held = None
        late = time.monotonic() - trace.acked >= self.config.timeout
        if held is not None and trace.spans <= held:
            self.acks.canary["found"] += 1
            self.acks.canary_seconds.observe(time.monotonic() - trace.acked)
            return True
        if late:
            self.acks.canary["missing" if held is None else "incomplete"] += 1
            return True
        return False
