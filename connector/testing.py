"""Test doubles for scripts, plugins and the connector's own tests.

Public on purpose: whoever writes a script or an output plugin needs the same
sinks, clock and ports that the connector's suite uses.

The sinks are outputs: give them to `Pipeline(config, script, [ListSink()], ...)` beside or
instead of the configured ones. `ListSink` keeps what it delivers; `FailingSink` fails
chosen batches or events; `RaisingSink` raises from a write; `StoppingSink` never
acknowledges until it is closed (the stop deadline). Each takes an `OutputConfig` for
`when`, `dead_letter` and `flush_timeout`.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable, Collection
from pathlib import Path

from connector.clock import SYSTEM, Clock
from connector.outputs.base import NOT_SENT, Acks, Batch, OutputConfig

__all__ = [
    "FailingSink",
    "FakeClock",
    "ListSink",
    "RaisingSink",
    "StoppingSink",
    "free_port",
]


def free_port(span: int = 1) -> int:
    """A port p with p..p+span-1 free, below the ephemeral range: a client reconnecting to
    a stopped server on an ephemeral port can connect to itself and hold the port, and the
    server then cannot bind it again. Under pytest-xdist each worker draws from a slice of
    its own: a port one worker found free is not taken by another before its server binds."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    first, end = 10_000, low
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get(
        "PYTEST_XDIST_WORKER_COUNT", ""
    )
    if worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(count) > 1:
        size = (low - first) // int(count)
        first += int(worker[2:]) * size
        end = first + size
    for _ in range(200):
        port = random.randrange(first, end - span)
        try:
            for p in range(port, port + span):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


class FakeClock:
    """A clock that moves only when slept on: `Pipeline(..., clock=FakeClock(t0))` runs an
    hour of a live schedule in milliseconds, each tick exactly on time."""

    def __init__(self, start: float = 1_767_225_600.0):  # 2026-01-01T00:00:00Z
        self._start = float(start)
        self._mono = 0.0
        self.slept = 0.0  # seconds slept in all

    def time(self) -> float:
        # from the monotonic sum, so the two never drift apart by rounding
        return self._start + self._mono

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self._mono += seconds
        self.slept += seconds

    def advance(self, seconds: float) -> None:
        """Time passes without the run sleeping (a slow script, a stalled output)."""
        self._mono += seconds


# -- output doubles -------------------------------------------------------------------------
# Each speaks the output protocol of connector/outputs/base.py. `write_batch` is one line
# that hands the events to `_take`, so a change of its signature is a change of one line.


class ListSink:
    """Keeps every event it is handed, in order (`events`, and `batches` as handed), and
    acknowledges each as delivered at once."""

    plugin = "list"

    def __init__(self, config: OutputConfig | None = None, name: str | None = None):
        self.config = config or OutputConfig()
        self.acks = Acks(
            name or self.plugin,
            self.plugin,
            self.config.dead_letter,
            routed=self.config.when is not None,
        )
        self.events: list[str] = []  # delivered, in order
        self.batches: list[list[str]] = []  # every batch as handed, failed events too
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def ready(self) -> bool:
        return self.started and not self.closed

    def write_batch(self, batch: Batch) -> None:
        self._take(batch.events)

    def _take(self, events: list[str]) -> None:
        self.batches.append(list(events))
        self.events += events
        self.acks.ok(len(events))

    def poll(self) -> None:
        pass

    def flush(self, timeout: float) -> int:
        return max(0, self.acks.pending)

    def close(self) -> None:
        self.closed = True


class FailingSink(ListSink):
    """A list sink that fails, with `reason`, every event of the chosen batches (`batches`:
    their numbers, counted from 1 in the order handed) and each event `events` picks; it
    delivers the rest. `reason` is a metric label: keep it one of a few."""

    plugin = "failing"

    def __init__(
        self,
        config: OutputConfig | None = None,
        name: str | None = None,
        *,
        batches: Collection[int] = (),
        events: Callable[[str], bool] | None = None,
        reason: str = "refused by the sink",
    ):
        super().__init__(config, name)
        self.fail_batches, self.fail_event, self.reason = set(batches), events, reason

    def _take(self, events: list[str]) -> None:
        self.batches.append(list(events))
        whole = len(self.batches) in self.fail_batches
        for event in events:
            if whole or (self.fail_event is not None and self.fail_event(event)):
                self.acks.fail(self.reason, event)
            else:
                self.events.append(event)
                self.acks.ok()


class RaisingSink(ListSink):
    """A list sink whose write of batch `on_batch` (counted from 1) raises `exc` (a bug in
    an output; KeyboardInterrupt for a signal inside the write). It first delivers the
    batch's first `accept` events and fails the rest as not sent, as an output must before
    it raises: every event it was handed is accounted for."""

    plugin = "raising"

    def __init__(
        self,
        config: OutputConfig | None = None,
        name: str | None = None,
        *,
        exc: BaseException | None = None,
        on_batch: int = 1,
        accept: int = 0,
    ):
        super().__init__(config, name)
        self.exc = exc if exc is not None else RuntimeError("write_batch raised (RaisingSink)")
        self.on_batch, self.accept = on_batch, accept

    def _take(self, events: list[str]) -> None:
        if len(self.batches) + 1 != self.on_batch:
            super()._take(events)
            return
        self.batches.append(list(events))
        self.events += events[: self.accept]
        self.acks.ok(min(self.accept, len(events)))
        self.acks.fail_all(NOT_SENT, events[self.accept :])
        raise self.exc


class StoppingSink(ListSink):
    """A sink that takes every event and acknowledges none until it is closed: the endpoint
    that stalls. `flush(timeout)` waits its whole timeout on `clock` (a FakeClock: no real
    wait); `close()` fails what it holds with `reason`. `flushing` is set as flush begins."""

    plugin = "stopping"

    def __init__(
        self,
        config: OutputConfig | None = None,
        name: str | None = None,
        *,
        clock: Clock = SYSTEM,
        reason: str = "undelivered at the flush deadline (flush_timeout)",
    ):
        super().__init__(config, name)
        self.clock, self.reason = clock, reason
        self.held: list[str] = []
        self.flushing = False

    def _take(self, events: list[str]) -> None:
        self.batches.append(list(events))
        self.held += events

    def flush(self, timeout: float) -> int:
        self.flushing = True
        deadline = self.clock.monotonic() + timeout
        while (left := deadline - self.clock.monotonic()) > 0:
            self.clock.sleep(min(left, 0.05))  # short sleeps: a signal is served promptly
        return max(0, self.acks.pending)

    def close(self) -> None:
        held, self.held = self.held, []
        self.acks.fail_all(self.reason, held)
        super().close()
