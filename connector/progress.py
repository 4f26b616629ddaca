"""What a running connector says while it works: a live line on a terminal, a log line elsewhere."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from connector.stats import RunStats

__all__ = ["Progress"]

log = logging.getLogger("connector.progress")


class Progress:
    """Reads the run's RunStats from its own thread; the hot path never waits on it."""

    def __init__(
        self,
        source: Callable[[], RunStats],
        total: int | None,
        interval: float,
        stream: TextIO | None = None,
    ):
        self.source = source
        self.total = total  # produce() calls in a backfill, when known
        self.stream = stream or sys.stderr  # as it is now (logs.py may have wrapped it)
        self.tty = self.stream.isatty()
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
            stats = self.source()
            if stats.starting:  # outputs still connecting: they say so themselves
                self._last = (time.monotonic(), stats.produced)
                continue
            line = self.line(stats)
            if self.tty:
                self.stream.write("\r\033[K" + line)
                self.stream.flush()
            else:
                log.info("progress: %s", line)

    def line(self, s: RunStats) -> str:
        now, produced = time.monotonic(), s.produced
        then, before = self._last
        self._last = (now, produced)
        rate = (produced - before) / max(now - then, 1e-9)
        targets = [t for t in s.target_rates if t is not None]
        target = f" (target {sum(targets):,.0f} timestamps/s)" if targets else ""
        parts = [
            f"{rate:,.0f} events/s{target}",
            f"produced {produced:,}",
            f"delivered {sum(o.delivered for o in s.outputs):,}",
            f"failed {sum(o.failed for o in s.outputs):,}",
        ]
        if any(o.routed for o in s.outputs):  # some output has a `when` rule
            parts.append(f"filtered {sum(o.filtered for o in s.outputs):,}")
        if s.mode == "live" and s.lag.count:
            parts.append(f"lag p99 <= {s.lag.quantile(0.99) * 1000:g} ms")
        if self.total:
            done = sum(s.calls) + s.replayed
            share = min(done / self.total, 1.0)
            elapsed = now - s.started
            eta = elapsed * (1 - share) / share if share else 0
            bar = "#" * int(share * 20)
            parts.append(f"[{bar:<20}] {share:4.0%} ETA {int(eta // 60)}:{int(eta % 60):02d}")
        return " | ".join(parts)
