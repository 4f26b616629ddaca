"""Test doubles for scripts, plugins and the connector's own tests.

Public on purpose: whoever writes a script or an output plugin needs the same
sinks, clock and ports that the connector's suite uses.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["FakeClock", "free_port"]


def free_port(span: int = 1) -> int:
    """A port p with p..p+span-1 free, below the ephemeral range: a client reconnecting to
    a stopped server on an ephemeral port can connect to itself and hold the port, and the
    server then cannot bind it again."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(10_000, low - span)
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
        self._wall = float(start)
        self._mono = 0.0
        self.slept = 0.0  # seconds slept in all

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self._wall += seconds
        self._mono += seconds
        self.slept += seconds

    def advance(self, seconds: float) -> None:
        """Time passes without the run sleeping (a slow script, a stalled output)."""
        self._wall += seconds
        self._mono += seconds
