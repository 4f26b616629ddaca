"""`connector top URL...`: the live view of a fleet, merged and per replica, read from
each replica's /metrics (fleet.py). A replica that stops answering is shown down, its
last numbers kept (and still counted in the merged view: what it did, it did)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from connector.view.sources import read_sources, targets

__all__ = ["add_parser", "cmd_top"]

EXIT_OK, EXIT_DOWN, EXIT_USAGE = 0, 1, 2


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
    from rich.console import Console  # rich and the fleet: only when top runs
    from rich.live import Live

    from connector.view.fleet import Fleet, frame

    fleet = Fleet(sources, args.timeout)
    console = Console(file=sys.stdout, highlight=False)
    # Ctrl-C and SIGTERM set a flag the loop reads: a KeyboardInterrupt raised wherever the
    # main thread happens to be (a finalizer run by the garbage collector) can be swallowed.
    stopped: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, _frame: stopped.append(signum))

    def pause(began: float) -> None:
        time.sleep(max(args.interval - (time.monotonic() - began), 0.05))

    try:
        if args.count is not None:
            for n in range(args.count):
                began = time.monotonic()
                fleet.poll()
                if stopped:
                    return EXIT_OK
                if n + 1 < args.count:
                    pause(began)
            console.print(frame(fleet))
            return EXIT_OK if all(r.up for r in fleet.replicas.values()) else EXIT_DOWN
        with Live(console=console, auto_refresh=False) as live:
            while not stopped:
                began = time.monotonic()
                fleet.poll()
                live.update(frame(fleet), refresh=True)
                pause(began)
        return EXIT_OK
    finally:
        fleet.close()
