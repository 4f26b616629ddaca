"""The live terminal view: rich's Live display, redrawn by the sampler's thread once a
second (never by the hot path)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TextIO

from rich.console import Console
from rich.file_proxy import FileProxy
from rich.live import Live

from connector.logs import QuietStream
from connector.stats import RunStats
from connector.view.position import Position
from connector.view.samples import Samples
from connector.view.screen import screen

__all__ = ["LiveView"]


class LiveView:
    def __init__(
        self,
        stream: TextIO,
        samples: Samples,
        where: Position,
        name: str,
        parts: Callable[[], list[RunStats]] | None = None,
        verify: Callable[[], Mapping[str, int] | None] | None = None,
    ):
        self.samples, self.where, self.name = samples, where, name
        self.parts, self.verify = parts, verify  # per-worker rows; the canary's numbers
        # Log lines and the script's prints reach stderr through logs.QuietStream: while
        # the view is up they go through rich, which prints them above it.
        self._quiet = stream if isinstance(stream, QuietStream) and stream.stream else None
        under = self._quiet.stream if self._quiet else stream
        self.console = Console(file=under, highlight=False)
        self.live = Live(
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def start(self) -> LiveView:
        self.live.start()
        if self._quiet is not None:
            self._quiet.stream = FileProxy(self.console, self.console.file)
        return self

    def draw(self, stats: RunStats) -> None:
        view = screen(
            stats,
            self.samples.recent(),
            time.monotonic(),
            self.where,
            self.name,
            self.parts() if self.parts else (),
            self.verify() if self.verify else None,
        )
        self.live.update(view, refresh=True)

    def stop(self, final: RunStats) -> None:
        """Draw the run's last numbers (the summary's) and leave them on the screen."""
        self.draw(final)
        if self._quiet is not None:
            self._quiet.stream.flush()
            self._quiet.stream = self.console.file
        self.live.stop()
        if not self.console.is_terminal:  # the one frame printed ends its last line
            self.console.line()
