"""Starting a local service with its scripts/local-* script: the endpoints it prints as
KEY=VALUE lines, or an error that says how to start it by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def start_service(script: Path, what: str, keys: list[str], how: str, timeout: float) -> dict:
    """`script start` (the first start may download or build for minutes); {KEY: VALUE} of
    `keys` as it printed them. RuntimeError naming `what` and `how` when it cannot."""
    try:
        proc = subprocess.run([sys.executable, str(script), "start"],
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"{what} unavailable ({e}); {how}") from e
    found = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    if proc.returncode or not all(k in found for k in keys):
        tail = "\n".join(proc.stderr.splitlines()[-20:])
        raise RuntimeError(f"{what} unavailable (exit {proc.returncode}); {how}\n{tail}")
    return {k: found[k] for k in keys}
