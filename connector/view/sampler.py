"""The sampler: a thread of its own reads the run's RunStats once a second into
`Samples`; the hot path never waits on it (it only copies counters, as progress does)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from connector.stats import RunStats
from connector.view.samples import Sample, Samples

__all__ = ["Sampler"]

log = logging.getLogger("connector.view")


class Sampler:
    """Samples `source()` every `interval` seconds; each listener is called with the
    RunStats just read (the live view draws from there, on this thread)."""

    def __init__(
        self,
        source: Callable[[], RunStats],
        interval: float = 1.0,
        samples: Samples | None = None,
    ):
        self.source = source
        self.interval = interval
        self.samples = samples or Samples()
        self.listeners: list[Callable[[RunStats], None]] = []
        self.latest: RunStats | None = None
        self._origin = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def start(self) -> Sampler:
        self._origin = time.monotonic()
        self._thread.start()
        return self

    def stop(self, final: RunStats | None = None) -> None:
        """Stop the thread; `final` (the run's last RunStats) becomes the last sample, so
        the series end at the summary's totals."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if final is not None:
            self.take(final)

    def take(self, stats: RunStats) -> None:
        self.latest = stats
        self.samples.add(Sample.of(time.monotonic() - self._origin, stats))

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            stats = self.source()
            if stats.starting:
                continue
            self.take(stats)
            for listener in self.listeners:
                try:
                    listener(stats)
                except Exception:  # a view that cannot draw must not end the run
                    log.debug("view: a listener failed", exc_info=True)
