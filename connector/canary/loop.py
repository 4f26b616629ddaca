"""What both canaries share: a thread of their own that, every `every` seconds, asks the
hot path for the next `sample` items (`want`), collects what it was handed, and gives what
waits to `_round` until each has a result. Results go to the output's Acks: `canary`
(counts by result) and `canary_seconds` (acknowledgement -> found), which the summary and
/metrics read."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from connector.stats import Histogram

__all__ = ["VISIBLE_BUCKETS", "CanaryLoop"]

log = logging.getLogger("connector.canary")
VISIBLE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class CanaryLoop:
    def __init__(self, config: Any, acks: Any, results: tuple[str, ...], name: str):
        self.config, self.acks = config, acks
        acks.canary = Counter(dict.fromkeys(results, 0))
        acks.canary_seconds = Histogram(VISIBLE_BUCKETS)
        self.want = 0  # items the hot path should hand over now
        # called with True when the canary starts wanting items: a hot path that pays per
        # item for handing them over (Kafka's delivery callback) installs it only then
        self.switch: Callable[[bool], None] = _ignore
        self._taken: list = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _hand(self, items: list) -> None:
        """Items for the canary's thread (from the hot path's thread)."""
        with self._lock:
            self._taken += items

    def _found(self, acked: float) -> None:
        self.acks.canary["found"] += 1
        self.acks.canary_seconds.observe(time.monotonic() - acked)

    def _loop(self) -> None:
        waiting: list = []
        next_sample = time.monotonic()
        try:
            self._begin()
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_sample:
                    with self._lock:  # against take() switching it off meanwhile
                        self.want = self.config.sample
                        self.switch(True)
                    next_sample = now + self.config.every
                with self._lock:
                    waiting += self._taken
                    self._taken = []
                waiting = self._round(waiting, now)
                self._stop.wait(0.2)
        except Exception:  # the canary never takes the run down
            log.exception("the canary of output %s stopped", self.acks.name)
        finally:
            self._end()

    def _begin(self) -> None:
        """On the canary's thread, before the first round."""

    def _end(self) -> None:
        """On the canary's thread, after the last round."""

    def _round(self, waiting: list, now: float) -> list:
        """Check what waits; return what still has no result."""
        raise NotImplementedError


def _ignore(on: bool) -> None:
    pass
