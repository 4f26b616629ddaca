"""telemetrygen (OpenTelemetry's own load generator), built once with Go into the cache
beside Jaeger: ${XDG_CACHE_HOME:-~/.cache}/connector/telemetrygen-<version>/telemetrygen.

Bench only, never CI. `python bench/telemetrygen.py` builds it and prints its path.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import tempfile
import time
from pathlib import Path

VERSION = os.environ.get("TELEMETRYGEN_VERSION", "v0.161.0")
PKG = "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen"
ROOT = Path(__file__).resolve().parent.parent
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "connector"
    / f"telemetrygen-{VERSION}"
)
BINARY = CACHE / "telemetrygen"


def _local_jaeger():
    """scripts/local-jaeger as a module: its Go check, lock and build heartbeat."""
    path = ROOT / "scripts" / "local-jaeger"
    loader = importlib.machinery.SourceFileLoader("local_jaeger", str(path))
    spec = importlib.util.spec_from_loader("local_jaeger", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def binary() -> Path:
    """The cached binary, built first when missing (`go install` into the cache)."""
    jaeger = _local_jaeger()
    with jaeger.locked(CACHE / ".lock"):
        if BINARY.exists():
            return BINARY
        jaeger.check_go()
        jaeger.log(f"building telemetrygen {VERSION} (once; may take minutes)")
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(dir=CACHE) as work:
            env = {**os.environ, "GOBIN": work, "GOWORK": "off",
                   "GOFLAGS": f"{os.environ.get('GOFLAGS', '')} -buildvcs=false".strip()}
            code, output = jaeger.run_with_heartbeat(
                ["go", "install", f"{PKG}@{VERSION}"], work, env, t0
            )
            if code:
                raise SystemExit("telemetrygen build failed:\n" + output[-3000:])
            os.replace(Path(work) / "telemetrygen", BINARY)
        jaeger.log(f"built {BINARY} in {time.monotonic() - t0:.0f}s")
    return BINARY


if __name__ == "__main__":
    print(binary())
