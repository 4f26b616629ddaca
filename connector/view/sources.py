"""Where `connector top` finds its replicas: URLs as given, `dns://NAME:PORT` (every
address a headless Service's name resolves to), and files of URLs."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["read_sources", "targets"]


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
