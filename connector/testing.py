"""Test doubles for scripts, plugins and the connector's own tests.

Public on purpose: whoever writes a script or an output plugin needs the same
sinks, clock and ports that the connector's suite uses.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port"]


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
