"""`connector top URL...`: the live view of a fleet, merged and per replica, read from
each replica's /metrics. A replica that stops answering is shown down, its last numbers
kept (and still counted in the merged view: what it did, it did)."""

from __future__ import annotations

import argparse
import functools
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlsplit

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from connector.stats import RunStats
from connector.view.samples import Sample, Samples
from connector.view.scrape import Scraped, fetch, parse, to_stats
from connector.view.screen import screen
from connector.view.series import rate

__all__ = ["Fleet", "add_parser", "cmd_top", "targets"]

EXIT_OK, EXIT_DOWN, EXIT_USAGE = 0, 1, 2


def _url(text: str) -> str:
    """http://host:port/metrics from `host:port`, `http://host:port` or a full URL."""
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text}: not an http(s) URL, a dns:// name or host:port")
    return text if parts.path not in ("", "/") else f"{text.rstrip('/')}/metrics"


def targets(sources: list[str], resolve=socket.getaddrinfo) -> list[str]:
    """Every replica's /metrics URL: URLs as given, and `dns://NAME:PORT` as one URL per
    address the name resolves to now (a headless Service: one per pod)."""
    out: list[str] = []
    for source in sources:
        if not source.startswith("dns://"):
            out.append(_url(source))
            continue
        parts = urlsplit(source)
        if not parts.hostname or not parts.port:
            raise ValueError(f"{source}: a dns:// source needs a name and a port")
        try:
            found = resolve(parts.hostname, parts.port, type=socket.SOCK_STREAM)
        except OSError:  # the name is gone for now: its replicas show down
            continue
        for address in sorted({info[4][0] for info in found}):
            host = f"[{address}]" if ":" in address else address
            out.append(f"http://{host}:{parts.port}{parts.path or '/metrics'}")
    return list(dict.fromkeys(out))


def read_sources(urls: list[str], file: Path | None) -> list[str]:
    """The URLs given and a file's (one a line; blank lines and # comments skipped)."""
    sources = list(urls)
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--file {file}: cannot read it ({exc})") from None
        for n, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if line and any(c.isspace() or not c.isprintable() for c in line):
                raise ValueError(f"--file {file}, line {n}: not a URL: {line!r}")
            if line:
                sources.append(line)
    return sources


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


def add_parser(sub) -> argparse.ArgumentParser:
    top = sub.add_parser("top", help="the live view of a fleet, read from each replica's /metrics")
    top.add_argument(
        "urls",
        nargs="*",
        metavar="URL",
        help="a replica's metrics (host:port, http://host:port[/metrics]), or dns://NAME:PORT "
        "for every address NAME resolves to (a headless Service's pods)",
    )
    top.add_argument("--file", type=Path, metavar="FILE", help="more URLs, one a line")
    top.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="read every replica this often (default: 1)",
    )
    top.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="a replica slower than this to answer is down (default: 2)",
    )
    top.add_argument(
        "--count",
        type=int,
        metavar="N",
        help="read N times (every --interval), print the last view and exit: 1 when a "
        "replica is down then (default: a live view until Ctrl-C)",
    )
    top.add_argument("--once", action="store_const", const=1, dest="count", help="--count 1")
    return top


def cmd_top(args: argparse.Namespace) -> int:
    try:
        sources = read_sources(args.urls, args.file)
        if not sources:
            raise ValueError("name at least one replica: URL... or --file FILE")
        if not (args.interval > 0 and args.timeout > 0):
            raise ValueError("--interval and --timeout must be greater than 0")
        if args.count is not None and args.count < 1:
            raise ValueError("--count must be at least 1")
        targets(sources)  # a malformed URL is a usage error now, not a down replica
    except ValueError as exc:
        print(f"connector top: {exc}", file=sys.stderr)
        return EXIT_USAGE
    fleet = Fleet(sources, args.timeout)
    console = Console(file=sys.stdout, highlight=False)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM ends it as Ctrl-C
    try:
        if args.count is not None:
            for n in range(args.count):
                began = time.monotonic()
                fleet.poll()
                if n + 1 < args.count:
                    time.sleep(max(args.interval - (time.monotonic() - began), 0.05))
            console.print(frame(fleet))
            return EXIT_OK if all(r.up for r in fleet.replicas.values()) else EXIT_DOWN
        with Live(console=console, auto_refresh=False) as live:
            while True:
                began = time.monotonic()
                fleet.poll()
                live.update(frame(fleet), refresh=True)
                time.sleep(max(args.interval - (time.monotonic() - began), 0.05))
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        fleet.close()
