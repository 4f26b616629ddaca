"""The OTLP rows of the bench: a Collector to send logs and metrics to, the bare loop E, and
telemetrygen beside the connector.

E maps and encodes the example's events (generated beforehand) with the connector's own
encoder (connector.otlp.signals.codec) and exports them over OTLP/gRPC, 8,192 items a
request (the otlp output's batch), to the same receiver as the connector's row, counting
acknowledged events: the ceiling of our own encoding and the receiver together.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from connector.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
BATCH = 8192
NOUNS = {"traces": "spans", "logs": "log_records", "metrics": "metric_points"}
# the mappings the bench's otlp rows use, for the connector and for E alike
LOG_MAPPING = {"body": "message", "severity": "level"}
METRIC_MAPPING = {"metrics": {
    "cpu_percent": {"type": "gauge", "unit": "%"},
    "memory_mb": {"type": "gauge", "unit": "MiBy"},
    "request_count": {"type": "sum", "monotonic": True, "temporality": "delta"},
}}
MAPPINGS = {"traces": None, "logs": LOG_MAPPING, "metrics": METRIC_MAPPING}
# the same metrics aggregated: CPU and memory as histograms (explicit and exponential)
HISTOGRAM_MAPPING = {"metrics": {
    **METRIC_MAPPING["metrics"],
    "cpu_percent": {"type": "histogram", "unit": "%", "temporality": "delta"},
    "memory_mb": {"type": "exponential_histogram", "unit": "MiBy"},
}}


class Collector:
    """scripts/local-collector with an otlp receiver feeding `nop` for every signal: what
    is measured is the receiver, not an exporter. Its own counters say what it accepted."""

    def __init__(self, work: Path):
        import yaml

        first = free_port(3)
        self.grpc, http, self.metrics_port = f"127.0.0.1:{first}", first + 1, first + 2
        self.env = {**os.environ, "LOCAL_COLLECTOR_DIR": str(work / "collector")}
        pipeline = {"receivers": ["otlp"], "exporters": ["nop"]}
        self.config = work / "collector.yaml"
        self.config.write_text(yaml.safe_dump({
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": self.grpc},
                                                 "http": {"endpoint": f"127.0.0.1:{http}"}}}},
            "exporters": {"nop": {}},
            "service": {
                "pipelines": {"traces": pipeline, "logs": pipeline, "metrics": pipeline},
                "telemetry": {"logs": {"level": "warn"}, "metrics": {"level": "basic", "readers": [
                    {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1",
                                                          "port": self.metrics_port}}}},
                ]}},
            },
        }))

    def _script(self, *args: str) -> str:
        r = subprocess.run([sys.executable, str(ROOT / "scripts" / "local-collector"), *args],
                           capture_output=True, text=True, env=self.env, timeout=900)
        if r.returncode:
            raise RuntimeError(f"local-collector {args[0]} failed:\n{r.stderr[-2000:]}")
        return r.stdout

    def start(self) -> None:
        self._script("start", str(self.config))

    def stop(self) -> None:
        self._script("stop")

    def accepted(self, signal: str) -> float:
        """otelcol_receiver_accepted_<spans|log_records|metric_points> so far."""
        import readback  # bench/readback.py

        samples = readback.scrape(self.metrics_port)
        if samples is None:
            raise RuntimeError(f"the Collector's metrics on {self.metrics_port} do not answer")
        return readback.metric(samples, f"otelcol_receiver_accepted_{NOUNS[signal]}_total")


def inner_encode(signal: str, script: Path, ticks: int, endpoint: str, start) -> None:
    """E: map + encode + export the script's events (made beforehand); prints RATE=events/s."""
    import grpc

    from connector.otlp.signals import MAPPINGS as MODELS
    from connector.otlp.signals import codec

    spec = importlib.util.spec_from_file_location("bench_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    events: list[str] = []
    for k in range(ticks):  # the same timestamps as every other row
        r = module.produce({"timestamp": start + timedelta(seconds=k), "tags": ()})
        events += [r] if isinstance(r, str) else r
    mapping = MAPPINGS[signal]
    c = codec(signal, None if mapping is None else MODELS[signal].model_validate(mapping))
    channel = grpc.insecure_channel(endpoint)
    grpc.channel_ready_future(channel).result(timeout=30)
    export = channel.unary_unary(c.signal.method)  # bytes in, bytes out
    # what the otlp output's sender thread does per batch: map the events (the codec's
    # `many`) and write the request, one request in flight while the next is encoded
    # (older code, run by --compare, maps one event at a time)
    many = getattr(c, "many", None) or (lambda chunk: ([c.from_text(e) for e in chunk], []))
    request = c.request
    sent, started, flying = 0, time.perf_counter(), None
    for i in range(0, len(events), BATCH):
        chunk = events[i : i + BATCH]
        body = request(many(chunk)[0])
        if flying is not None:
            flying.result()
        flying = export.future(body, timeout=30)
        sent += len(chunk)
    if flying is not None:
        flying.result()
    print(f"RATE={sent / (time.perf_counter() - started)}")
    channel.close()


def telemetrygen(endpoint: str, traces: int, children: int = 7) -> list[str]:
    """telemetrygen unthrottled (--rate 0): `traces` traces of 1 + `children` spans."""
    sys.path.insert(0, str(ROOT / "bench"))
    from telemetrygen import binary

    return [str(binary()), "traces", "--otlp-endpoint", endpoint, "--otlp-insecure",
            "--rate", "0", "--traces", str(traces), "--child-spans", str(children),
            "--workers", "1"]
