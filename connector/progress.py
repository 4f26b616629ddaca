"""What a running connector says while it works: a live line on a terminal, a log line elsewhere."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from connector.pipeline import Pipeline

__all__ = ["Progress"]

log = logging.getLogger("connector.progress")


class Progress:
    """Reads the pipeline's counters from its own thread; the hot path never waits on it."""

    def __init__(
        self, pipeline: Pipeline, total: int | None, interval: float, stream: TextIO = sys.stderr
    ):
        self.pipeline = pipeline
        self.total = total  # produce() calls in a backfill, when known
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = 1.0 if self.tty else interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._last = (time.monotonic(), 0)

    def start(self) -> Progress:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=2)
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            line = self.line()
            if self.tty:
                self.stream.write("\r\033[K" + line)
                self.stream.flush()
            else:
                log.info("progress: %s", line)

    def line(self) -> str:
        p = self.pipeline
        now, produced = time.monotonic(), p.produced
        then, before = self._last
        self._last = (now, produced)
        rate = (produced - before) / max(now - then, 1e-9)
        acks = p.all_acks()
        parts = [
            f"{rate:,.0f} events/s",
            f"produced {produced:,}",
            f"delivered {sum(a.delivered for a in acks):,}",
            f"failed {sum(a.failed for a in acks):,}",
        ]
        if p.options.mode == "live" and p.lag.count:
            parts.append(f"lag p99 <= {p.lag.quantile(0.99) * 1000:g} ms")
        if self.total:
            done = sum(p.calls)
            share = min(done / self.total, 1.0)
            elapsed = now - p.started
            eta = elapsed * (1 - share) / share if share else 0
            bar = "#" * int(share * 20)
            parts.append(f"[{bar:<20}] {share:4.0%} ETA {int(eta // 60)}:{int(eta % 60):02d}")
        return " | ".join(parts)
