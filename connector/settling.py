"""--checkpoint in the pipeline: resume (replay unsent) what an earlier run settled, and
settle a checkpoint (every event handed so far acknowledged, then the position saved).
A part of `Pipeline`; the stores and the file are checkpoint.py's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from connector.checkpoint import SETTLE_TIMEOUT, resume_ticks

__all__ = ["Settling"]


class Settling:
    """Pipeline's checkpoints: resume, and settle."""

    def _resume(self, stream: Iterator[tuple[datetime, int]]) -> None:
        """Skip (replay unsent) what an earlier run settled."""
        with self._waiting():  # reading a committed position may take a moment
            ticks = resume_ticks(self.positions, self._fan.positions(), len(self.outputs))
        tags = [e.settings.tags for e in self.config.input]
        self.checkpoints.resume(stream, ticks, self.script.produce, tags, self._stop)
        self._ticks0 = self._handed_ticks = ticks

    def _settle(self) -> None:
        """A checkpoint: wait until every event handed so far is acknowledged, then save
        the position. Nothing is handed meanwhile: this wait is what a checkpoint costs."""
        began = self.clock.monotonic()
        with self._waiting():
            flushed = self._fan.settle(SETTLE_TIMEOUT)
        self.checkpoints.settle(flushed, began, self._handed_ticks)
