"""What watches a run, wired in one place for run.py: the sampler, the live view (on a
terminal or with --view) and the report (--report or `report:`)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from connector.stats import RunStats
from connector.view.facts import RunFacts
from connector.view.position import Position
from connector.view.report import write_report
from connector.view.sampler import Sampler

if TYPE_CHECKING:
    from connector.view.live import LiveView

__all__ = ["Watch", "wants_view"]


def wants_view(asked: bool | None, quiet: bool, stdout_output: bool) -> bool:
    """--view, or stderr a terminal (not with --no-view); never with --quiet; not by
    itself when an output writes to stdout on the same terminal (its events would tear
    the view)."""
    if quiet or asked is False:
        return False
    if asked:
        return True
    return sys.stderr.isatty() and not (stdout_output and sys.stdout.isatty())


@dataclass
class Watch:
    sampler: Sampler
    facts: RunFacts
    report: Path | None = None
    live: LiveView | None = None
    # the verify canary's numbers (found, missing...) when it is on: the view and the
    # report show them in their own place
    verify: Callable[[], Mapping[str, int] | None] | None = None

    @classmethod
    def begin(
        cls,
        source: Callable[[], RunStats],
        facts: Callable[[], RunFacts],
        report: Path | None,
        view: bool,
        where: Position,
        parts: Callable[[], list[RunStats]] | None = None,
        verify: Callable[[], Mapping[str, int] | None] | None = None,
    ) -> Watch | None:
        """Start sampling when a view or a report wants it; None when neither does."""
        if report is None and not view:
            return None
        about = facts()  # the config dumped, the script hashed: only when asked for
        sampler = Sampler(source)
        live = None
        if view:  # rich is imported only when a view is drawn
            from connector.view.live import LiveView

            live = LiveView(sys.stderr, sampler.samples, where, about.name, parts, verify)
            live.start()
            sampler.listeners.append(live.draw)
        return cls(sampler.start(), about, report, live, verify)

    def stop(self, final: RunStats) -> None:
        """The run is over: its last numbers become the last sample and the last frame."""
        self.sampler.stop(final)
        if self.live is not None:
            self.live.stop(final)

    def write(self, final: RunStats) -> None:
        if self.report is not None:
            found = self.verify() if self.verify else None
            write_report(self.report, self.sampler.samples.history(), final, self.facts, found)
