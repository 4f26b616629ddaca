"""The pipeline's schedule anchored once every output (of every worker) is ready. A part
of `Pipeline`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from connector.clock import now as clock_now
from connector.config import ConfigError
from connector.inputs.schedule import Schedule

log = logging.getLogger("connector")

__all__ = ["Anchoring"]


class Anchoring:
    """Pipeline's start: the schedule anchored (live: from the moment all are ready)."""

    def _anchored(self, plan: Schedule) -> Iterator[tuple[datetime, int]] | None:
        """The schedule, anchored: in live mode `start: now`, relative times and --duration
        count from the moment every output (of every worker) is ready. None: stop."""
        with self._waiting():
            anchor = clock_now(self.clock, self.config.tz) if self.anchor is None else self.anchor()
        self.starting = False
        if anchor is None or self._stop:
            return None
        try:
            self.schedule = plan.at(anchor)
        except ConfigError as exc:  # an end that passed while the outputs connected
            self.problems += exc.problems
            self.stop_reason = "nothing left to schedule"
            log.error("nothing left to schedule: %s", "; ".join(exc.problems))
            return None
        identity = self.options.identity
        stream = self.schedule.ticks(identity.worker, identity.workers)
        stream = self.script.follow(stream, identity.worker, identity.workers)
        return self.limits.anchor(anchor, stream, self.options.mode == "live")
