"""Prometheus metrics and health endpoints.

The pipeline keeps plain counters (no locks on the hot path); a collector turns
a `RunStats` of them into metric families when Prometheus scrapes, so /metrics,
the progress line and the run summary all read the same numbers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from connector import __version__
from connector.stats import RunStats

__all__ = ["METRICS", "PROCESS_METRICS", "MemoryWatch", "MetricsServer", "registry_for"]

Source = Callable[[], RunStats | None]

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
    "connector_events_filtered_total": (
        "counter",
        ("output",),
        "Events an output's `when` rule kept from it (never produced for it).",
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
    "connector_input_target_rate": (
        "gauge",
        ("input",),
        "Rate inputs: timestamps per second this replica's share is scheduled to emit now.",
    ),
    "connector_schedule_behind_seconds": (
        "gauge",
        (),
        "Live mode: how far the run is behind its schedule right now.",
    ),
    "connector_output_pending_events": (
        "gauge",
        ("output",),
        "Events handed to an output and not yet acknowledged.",
    ),
    "connector_transactions_total": (
        "counter",
        ("output", "outcome"),
        "Transactional outputs: transactions committed or aborted.",
    ),
    "connector_transaction_seconds": (
        "histogram",
        ("output",),
        "Transactional outputs: seconds from a transaction's begin to its commit.",
    ),
    "connector_verify_checked_total": (
        "counter",
        ("output", "result"),
        "Live canary: acknowledged records or traces read back, by result (found, missing, "
        "altered, incomplete).",
    ),
    "connector_verify_visible_seconds": (
        "histogram",
        ("output",),
        "Live canary: seconds from a record's acknowledgement until it could be read back.",
    ),
    "connector_info": ("gauge", ("version", "config_name"), "Always 1; carries the labels."),
}


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
    def __init__(self, source: Source, config_name: str):
        self.source = source
        self.config_name = config_name

    def collect(self) -> Iterator[Metric]:
        info = _family("connector_info")
        info.add_metric([__version__, self.config_name], 1)
        yield info
        s = self.source()
        if s is None:
            return
        families = {name: _family(name) for name in METRICS if name != "connector_info"}
        for name, ticks, events in zip(s.input_names, s.timestamps, s.events, strict=True):
            families["connector_timestamps_total"].add_metric([name], ticks)
            families["connector_events_produced_total"].add_metric([name], events)
        for error, n in sorted(s.script_errors.items()):
            families["connector_script_errors_total"].add_metric([error], n)
        for o in s.outputs:
            families["connector_events_delivered_total"].add_metric([o.name], o.delivered)
            for reason, n in sorted(o.reasons.items()):
                families["connector_events_failed_total"].add_metric([o.name, reason], n)
            families["connector_events_filtered_total"].add_metric([o.name], o.filtered)
            families["connector_output_pending_events"].add_metric([o.name], o.pending)
            families["connector_delivery_latency_seconds"].add_metric(
                [o.name], o.latency.buckets(), o.latency.sum
            )
            if o.transactions is not None:
                for outcome in ("committed", "aborted"):
                    families["connector_transactions_total"].add_metric(
                        [o.name, outcome], o.transactions[outcome]
                    )
            if o.transaction_seconds is not None:
                seconds = o.transaction_seconds
                families["connector_transaction_seconds"].add_metric(
                    [o.name], seconds.buckets(), seconds.sum
                )
            if o.verify_checked is not None:
                for result, n in sorted(o.verify_checked.items()):
                    families["connector_verify_checked_total"].add_metric([o.name, result], n)
            if o.verify_visible is not None:
                families["connector_verify_visible_seconds"].add_metric(
                    [o.name], o.verify_visible.buckets(), o.verify_visible.sum
                )
        families["connector_schedule_lag_seconds"].add_metric([], s.lag.buckets(), s.lag.sum)
        for name, target in zip(s.input_names, s.target_rates, strict=True):
            if target is not None:
                families["connector_input_target_rate"].add_metric([name], target)
        if s.mode == "live":
            families["connector_schedule_behind_seconds"].add_metric([], s.behind)
        yield from families.values()


# prometheus-client's process collector (Linux): the serving process's own figures.
PROCESS_METRICS = (
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
)


def registry_for(source: Source, config_name: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(source, config_name))
    ProcessCollector(registry=registry)
    return registry


def resident_bytes() -> int:
    """This process's resident memory (0 where /proc cannot say)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class MemoryWatch:
    """Warns once when this process's resident memory passes `bound_mib` (0: never): a
    script that keeps state per call grows without a word otherwise. From its own thread,
    every `every` seconds; /healthz reports what it saw."""

    def __init__(self, bound_mib: float, who: str = "", every: float = 2.0):
        self.bound = int(bound_mib * 2**20)
        self.who = who
        self.every = every
        self.resident = resident_bytes()
        self.over = False
        self._done = threading.Event()
        if self.bound > 0:
            threading.Thread(target=self._loop, name="memory", daemon=True).start()

    def _loop(self) -> None:
        while not self._done.wait(self.every):
            self.check()

    def check(self) -> None:
        self.resident = resident_bytes()
        if self.bound and not self.over and self.resident > self.bound:
            self.over = True
            log.warning(
                "%sresident memory is %d MiB, past metrics.memory_warning (%d MiB); does the "
                "script keep something per call? (said once)",
                f"{self.who}: " if self.who else "",
                self.resident >> 20,
                self.bound >> 20,
            )

    def stop(self) -> None:
        """The run is over: a last look (a short run may pass the bound between two)."""
        self._done.set()
        self.check()


class MetricsServer:
    """/metrics, /healthz and /readyz on one port, in a daemon thread.

    `source` gives the run's RunStats (None before it starts); `probe`, when set, asks
    the outputs whether they are connected before /readyz reads the answer."""

    def __init__(self, host: str, port: int, config_name: str, stall_after: float = 300.0):
        self.source: Source = lambda: None
        self.probe: Callable[[], None] | None = None
        self.memory: MemoryWatch | None = None
        self.stall_after = stall_after
        self.registry = registry_for(lambda: self.source(), config_name)
        self._ready_cache = (0.0, False, "starting")
        self._rendering: _Render | None = None
        self._render_lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a scraper that connects and says nothing frees its thread

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, server.render(), CONTENT_TYPE_LATEST)
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

        self.httpd = _Server((host, port), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True).start()

    def render(self) -> bytes:
        """/metrics. Scrapes that come while one is being rendered share its result: 200
        scrapers at once cost one rendering at a time, not 200 competing with the run."""
        with self._render_lock:
            render, mine = self._rendering, self._rendering is None
            if mine:
                render = self._rendering = _Render()
        if mine:
            try:
                render.body = generate_latest(self.registry)
            finally:
                with self._render_lock:
                    self._rendering = None
                render.done.set()
        else:
            render.done.wait()
        if render.body is None:  # the rendering failed: this scrape tries itself
            return generate_latest(self.registry)
        return render.body

    def health(self) -> tuple[int, dict]:
        s = self.source()
        if s is not None and not s.alive:
            return 503, {"status": "stopped", "reason": s.stop_reason or "schedule complete"}
        stalled = s.stalled if s is not None else 0.0
        if stalled > self.stall_after:
            return 503, {
                "status": "stalled",
                "reason": f"no produce() call for {stalled:.0f}s (a hung script?)",
            }
        body: dict = {"status": "alive"}
        if self.memory is not None:  # reported, not judged: the probe restarts nothing for it
            body["resident_memory_bytes"] = self.memory.resident
            if self.memory.over:
                body["memory"] = f"past metrics.memory_warning ({self.memory.bound >> 20} MiB)"
        return 200, body

    def readiness(self) -> tuple[int, dict]:
        """Every output connected; cached for a second so probes cost the brokers nothing."""
        checked, ok, reason = self._ready_cache
        if time.monotonic() - checked < 1.0:
            return (200 if ok else 503), {"ready": ok, "reason": reason}
        if self.probe is not None:
            self.probe()
        s = self.source()
        down = [o.name for o in s.outputs if not o.ready] if s is not None else []
        if s is None:
            ok, reason = False, "starting"
        elif not s.alive:
            ok, reason = False, "pipeline stopped"
        elif down:
            ok, reason = False, f"not connected: {', '.join(down)}"
        else:
            ok, reason = not s.starting, "starting" if s.starting else "ok"
        self._ready_cache = (time.monotonic(), ok, reason)
        return (200 if ok else 503), {"ready": ok, "reason": reason}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Render:
    """One /metrics rendering that concurrent scrapes wait for."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.done = threading.Event()


class _Server(ThreadingHTTPServer):
    """A thread per scrape, a listen backlog for many at once, and a scraper that hangs up
    is no error: no traceback on stderr for it (the standard server prints one)."""

    daemon_threads = True
    request_queue_size = 256  # the default 5 makes a burst of scrapers wait for SYN retries

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):  # gone, or silent too long
            return
        log.warning("metrics: a request from %s failed: %r", client_address[0], exc)
