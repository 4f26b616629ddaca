"""A fleet read from each replica's /metrics: every replica's last page (kept when it
stops answering), their merged RunStats, and the frame `connector top` draws."""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.error import URLError

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from connector.stats import RunStats
from connector.view.samples import Sample, Samples
from connector.view.scrape import Scraped, fetch, parse, to_stats
from connector.view.screen import screen
from connector.view.series import rate
from connector.view.sources import targets

__all__ = ["Fleet", "frame"]


@dataclass
class Replica:
    url: str
    page: Scraped | None = None  # the last page read (kept when it goes down)
    up: bool = False
    error: str = ""
    seen: float | None = None  # time.monotonic() of the last answer
    samples: Samples = field(default_factory=lambda: Samples(capacity=120))


class Fleet:
    def __init__(self, sources: list[str], timeout: float = 2.0):
        self.sources, self.timeout = sources, timeout
        self.replicas: dict[str, Replica] = {}
        self.merged = Samples(capacity=120)
        self.started = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="top")

    def _read(self, url: str) -> Scraped | str:
        try:
            return parse(fetch(url, self.timeout))
        except (OSError, ValueError) as exc:
            why = exc.reason if isinstance(exc, URLError) else exc
            return str(why) or type(exc).__name__

    def poll(self) -> None:
        urls = targets(self.sources)
        for url in urls:
            self.replicas.setdefault(url, Replica(url))
        now = time.monotonic()
        for replica, got in zip(
            list(self.replicas.values()),
            self._pool.map(self._read, list(self.replicas)),
            strict=True,
        ):
            if isinstance(got, Scraped):
                replica.page, replica.up, replica.error, replica.seen = got, True, "", now
            else:
                replica.up, replica.error = False, got
        merged, parts = self.stats()
        t = now - self.started
        for replica, part in zip(self.replicas.values(), parts, strict=True):
            if part is not None and replica.up:
                replica.samples.add(Sample.of(t, part))
        if merged is not None:
            self.merged.add(Sample.of(t, merged))

    def stats(self) -> tuple[RunStats | None, list[RunStats | None]]:
        """The merged RunStats (None before any replica answered) and each replica's."""
        pages = [r.page for r in self.replicas.values()]
        inputs = sorted({i for p in pages if p for i in p.timestamps})
        outputs = sorted({o for p in pages if p for o in p.outputs})
        parts = [None if p is None else to_stats(p, inputs, outputs) for p in pages]
        known = [p for p in parts if p is not None]
        if not known:
            return None, parts
        merged = functools.reduce(RunStats.merge, known[1:], known[0].snapshot())
        merged.started, merged.alive = self.started, True
        return merged, parts

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _replicas(fleet: Fleet, parts: list[RunStats | None], now: float) -> Table:
    table = Table(title="replicas", title_justify="left")
    table.add_column("replica", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for column in ("produced", "delivered", "failed", "in flight", "achieved/s", "lag p99"):
        table.add_column(column, justify="right")
    table.add_column("last error")
    for replica, p in zip(fleet.replicas.values(), parts, strict=True):
        if replica.up:
            state = "up"
        elif replica.seen is None:
            state = "down (never up)"
        else:
            state = f"down {now - replica.seen:.0f} s"
        error = Text(replica.error[:80])
        if p is None:
            table.add_row(Text(replica.url), Text(state), *["-"] * 6, error)
            continue
        rates = rate(replica.samples.recent(), lambda s: sum(s.timestamps))
        kept = "" if replica.up else " *"  # the numbers of its last answer
        table.add_row(
            Text(replica.url),
            Text(state, style="" if replica.up else "bold red"),
            f"{p.produced:,}{kept}",
            f"{sum(o.delivered for o in p.outputs):,}{kept}",
            f"{sum(o.failed for o in p.outputs):,}{kept}",
            f"{sum(o.pending for o in p.outputs):,}{kept}",
            f"{rates[-1]:,.0f}" if rates and replica.up else "-",
            f"<= {p.lag.quantile(0.99) * 1000:g} ms" if p.lag.count else "-",
            error,
        )
    return table


def frame(fleet: Fleet) -> RenderableType:
    now = time.monotonic()
    merged, parts = fleet.stats()
    up = sum(r.up for r in fleet.replicas.values())
    title = f"fleet: {len(fleet.replicas)} replica(s), {up} up"
    if merged is None:
        return Group(Text(title, style="bold"), _replicas(fleet, parts, now))
    kept = any(not r.up and r.page is not None for r in fleet.replicas.values())
    note = [Text("* a down replica's last numbers, kept in the merged view")] if kept else []
    return Group(
        screen(merged, fleet.merged.recent(), now, name=title),
        _replicas(fleet, parts, now),
        *note,
    )
