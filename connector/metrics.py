"""Prometheus metrics and health endpoints.

The pipeline keeps plain counters (no locks on the hot path); a collector turns
them into metric families when Prometheus scrapes, so /metrics, the progress
line and the run summary all read the same numbers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from connector import __version__

if TYPE_CHECKING:
    from connector.pipeline import Pipeline

__all__ = ["METRICS", "Histogram", "MetricsServer", "registry_for"]

log = logging.getLogger("connector.metrics")

# name -> (type, labels, help): the README's table is checked against this.
METRICS = {
    "connector_timestamps_total": ("counter", ("input",), "Timestamps the inputs emitted."),
    "connector_events_produced_total": ("counter", ("input",), "Events produce() returned."),
    "connector_script_errors_total": (
        "counter",
        ("error",),
        "produce() calls that raised (by exception class) or returned "
        "a wrong type (bad_return_type).",
    ),
    "connector_events_delivered_total": (
        "counter",
        ("output",),
        "Events an output acknowledged as delivered.",
    ),
    "connector_events_failed_total": (
        "counter",
        ("output", "reason"),
        "Events that failed for good, by reason.",
    ),
    "connector_delivery_latency_seconds": (
        "histogram",
        ("output",),
        "Time from handing an event to an output to its acknowledgement.",
    ),
    "connector_schedule_lag_seconds": (
        "histogram",
        (),
        "Live mode: how late produce() ran after its timestamp came due.",
    ),
    "connector_output_pending_events": (
        "gauge",
        ("output",),
        "Events handed to an output and not yet acknowledged.",
    ),
    "connector_info": ("gauge", ("version", "config_name"), "Always 1; carries the labels."),
}


class Histogram:
    """A lock-free histogram for the hot path; read by the collector when scraped."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: value <= bound
        self.sum += value

    def observe_many(self, value: float, times: int) -> None:
        self.counts[bisect_left(self.bounds, value)] += times
        self.sum += value * times

    def add(self, counts: list[int], total: float) -> None:
        """Fold in another histogram's bucket counts and sum (a worker's snapshot)."""
        self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
        self.sum += total

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (inf when past the last bound)."""
        total, seen = self.count, 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += n
            if total and seen >= q * total:
                return bound
        return 0.0

    def buckets(self) -> list[tuple[str, int]]:
        out, seen = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), seen))
        return out


def _family(name: str) -> Metric:
    kind, labels, doc = METRICS[name]
    base = name.removesuffix("_total") if kind == "counter" else name
    cls = {
        "counter": CounterMetricFamily,
        "gauge": GaugeMetricFamily,
        "histogram": HistogramMetricFamily,
    }[kind]
    return cls(base, doc, labels=list(labels))


class _Collector:
    def __init__(self, source: Callable[[], Pipeline | None], config_name: str):
        self.source = source
        self.config_name = config_name

    def collect(self) -> Iterator[Metric]:
        info = _family("connector_info")
        info.add_metric([__version__, self.config_name], 1)
        yield info
        p = self.source()
        if p is None:
            return
        families = {name: _family(name) for name in METRICS if name != "connector_info"}
        for name, ticks, events in zip(p.input_names, p.timestamps, p.events, strict=True):
            families["connector_timestamps_total"].add_metric([name], ticks)
            families["connector_events_produced_total"].add_metric([name], events)
        for error, n in sorted(p.script.errors.items()):
            families["connector_script_errors_total"].add_metric([error], n)
        for acks in p.all_acks():
            families["connector_events_delivered_total"].add_metric([acks.name], acks.delivered)
            for reason, n in sorted(acks.reasons.items()):
                families["connector_events_failed_total"].add_metric([acks.name, reason], n)
            families["connector_output_pending_events"].add_metric([acks.name], acks.pending)
            families["connector_delivery_latency_seconds"].add_metric(
                [acks.name], acks.latency.buckets(), acks.latency.sum
            )
        families["connector_schedule_lag_seconds"].add_metric([], p.lag.buckets(), p.lag.sum)
        yield from families.values()


def registry_for(source: Callable[[], Pipeline | None], config_name: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(source, config_name))
    return registry


class MetricsServer:
    """/metrics, /healthz and /readyz on one port, in a daemon thread."""

    def __init__(self, host: str, port: int, config_name: str, stall_after: float = 300.0):
        self.pipeline: Pipeline | None = None
        self.stall_after = stall_after
        self.registry = registry_for(lambda: self.pipeline, config_name)
        self._ready_cache = (0.0, False, "starting")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    code, body = server.health()
                    self._send(code, json.dumps(body).encode(), "application/json")
                elif path == "/readyz":
                    code, body = server.readiness()
                    self._send(code, json.dumps(body).encode(), "application/json")
                else:
                    self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

            def _send(self, code: int, body: bytes, kind: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # scrapes are not worth a log line
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True).start()

    def health(self) -> tuple[int, dict]:
        p = self.pipeline
        if p is not None and not p.alive:
            return 503, {"status": "stopped", "reason": p.stop_reason or "schedule complete"}
        stalled = p.stalled_for() if p is not None and hasattr(p, "stalled_for") else 0.0
        if stalled > self.stall_after:
            return 503, {
                "status": "stalled",
                "reason": f"no produce() call for {stalled:.0f}s (a hung script?)",
            }
        return 200, {"status": "alive"}

    def readiness(self) -> tuple[int, dict]:
        """Every output connected; cached for a second so probes cost the brokers nothing."""
        checked, ok, reason = self._ready_cache
        if time.monotonic() - checked < 1.0:
            return (200 if ok else 503), {"ready": ok, "reason": reason}
        p = self.pipeline
        if p is None:
            ok, reason = False, "starting"
        elif not p.alive:
            ok, reason = False, "pipeline stopped"
        else:
            down = [o.acks.name for o in p.outputs if not o.ready()]
            ok, reason = not down, (f"not connected: {', '.join(down)}" if down else "ok")
        self._ready_cache = (time.monotonic(), ok, reason)
        return (200 if ok else 503), {"ready": ok, "reason": reason}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
