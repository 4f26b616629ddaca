"""A real OpenTelemetry Collector (the Jaeger v2 binary, through scripts/local-collector)
with a test's own config, on free ports, in the test's own state folder.

`Collector.config(pipelines=..., receivers=..., exporters=...)` fills in the otlp receiver,
the Collector's own metrics endpoint (otelcol_receiver_accepted_* / refused_*) and, with
`jaeger=True`, a memory store with its query API on ports of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from connector.testing import free_port
from tests.harness.metrics import Samples, metric, scrape

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local-collector"


def kafka_receiver(bootstrap: str, group: str, **signals: dict) -> dict:
    """The kafka receiver reading from the start of the topics, in a group of the test's own."""
    return {"kafka": {"brokers": [bootstrap], "group_id": group, "initial_offset": "earliest",
                      **signals}}


class Collector:
    def __init__(self, state: Path):
        self.state = Path(state)
        first = free_port(5)  # not ephemeral: see free_port
        self.ports = dict(zip(("grpc", "http", "metrics", "query", "query_grpc"),
                              range(first, first + 5), strict=True))
        self.otlp_grpc = f"127.0.0.1:{self.ports['grpc']}"
        self.otlp_http = f"http://127.0.0.1:{self.ports['http']}"
        self.query = f"http://127.0.0.1:{self.ports['query']}"
        self.endpoints: dict[str, str] = {}
        self.env = os.environ | {"LOCAL_COLLECTOR_DIR": str(self.state)}

    def config(self, pipelines: dict, receivers: dict | None = None,
               exporters: dict | None = None, jaeger: bool = False) -> dict:
        """A whole Collector config: `pipelines` as in service.pipelines."""
        doc: dict = {
            "receivers": {"otlp": {"protocols": {
                "grpc": {"endpoint": self.otlp_grpc},
                "http": {"endpoint": self.otlp_http.removeprefix("http://")},
            }}, **(receivers or {})},
            "exporters": dict(exporters or {}),
            "service": {
                "pipelines": pipelines,
                "telemetry": {
                    "logs": {"level": "info"},
                    "metrics": {"level": "detailed", "readers": [{"pull": {"exporter": {
                        "prometheus": {"host": "127.0.0.1", "port": self.ports["metrics"]},
                    }}}]},
                },
            },
        }
        if jaeger:
            doc["extensions"] = {
                "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 100000}}}},
                "jaeger_query": {
                    "storage": {"traces": "memstore"},
                    "http": {"endpoint": f"127.0.0.1:{self.ports['query']}"},
                    "grpc": {"endpoint": f"127.0.0.1:{self.ports['query_grpc']}"},
                },
            }
            doc["service"]["extensions"] = ["jaeger_storage", "jaeger_query"]
            doc["exporters"]["jaeger_storage_exporter"] = {"trace_storage": "memstore"}
        return doc

    def start(self, config: dict | Path) -> dict[str, str]:
        """Start with a config (a dict, or a file whose ports come from COLLECTOR_*_PORT:
        set to this Collector's)."""
        self.state.mkdir(parents=True, exist_ok=True)
        if isinstance(config, Path):
            path = config
            self.env |= {f"COLLECTOR_{k.upper()}_PORT": str(v) for k, v in {
                "otlp_grpc": self.ports["grpc"], "otlp_http": self.ports["http"],
                "metrics": self.ports["metrics"], "query": self.ports["query"],
                "query_grpc": self.ports["query_grpc"]}.items()}
        else:
            path = self.state.parent / f"{self.state.name}.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
        r = self._run("start", str(path))
        self.endpoints = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
        return self.endpoints

    def stop(self) -> None:
        self._run("stop")

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                           timeout=900, env=self.env)
        if r.returncode:
            raise RuntimeError(
                f"scripts/local-collector {' '.join(args)} exited {r.returncode} (it builds the "
                f"Jaeger binary once with Go: see scripts/local-jaeger):\n{r.stderr[-3000:]}"
            )
        return r

    @property
    def log(self) -> str:
        return (self.state / "collector.log").read_text(errors="replace")

    def counters(self) -> Samples:
        """The Collector's own metrics {(name, sorted labels): value}; {} when not served."""
        return scrape(self.endpoints["COLLECTOR_METRICS"]) or {}

    def counter(self, name: str, **labels: str) -> float:
        """The sum of a counter's samples with these labels (0 when not counted yet)."""
        name = name if name.endswith("_total") else f"{name}_total"
        return metric(self.counters(), name, **labels)

    def wait_counter(self, name: str, want: float, timeout: float = 60, **labels: str) -> float:
        """Poll until the counter reaches `want`, then wait a moment more to see it stay."""
        deadline, got = time.monotonic() + timeout, 0.0
        while time.monotonic() < deadline:
            got = self.counter(name, **labels)
            if got >= want:
                time.sleep(0.5)  # anything beyond `want` (a duplicate) shows now
                return self.counter(name, **labels)
            time.sleep(0.1)
        raise AssertionError(f"{name}{labels}: {got} after {timeout}s, expected {want}"
                             f"\n--- collector log ---\n{self.log[-3000:]}")
