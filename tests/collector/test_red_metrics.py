"""The shop topology's RED metrics (and its log lines) through a real Collector (otlp receiver -> kafka exporter as
otlp_json), compared field by field with the spans the run really sent: explicit-bound
histograms (delta) and exponential ones (cumulative), bucket counts, bounds, scale, count,
sum, min, max, and exemplars that point at real spans. The Collector's `spanmetrics`
connector derives its own RED metrics from the same spans: their call counts agree."""

from __future__ import annotations

import json
import math
import time
from bisect import bisect_left
from collections import Counter, defaultdict

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from tests.harness.cli import EXAMPLES, run_cli
from tests.harness.collector import kafka_receiver
from tests.harness.kafka import read_topic
from tests.harness.otlp import attrs, nanos, parse_otlp_json, read_requests

BOUNDS = [0.5, 2, 8, 32, 128]
SCALE, MAX_SIZE = 6, 24
DELTA = {"metrics": {
    "requests": {"type": "sum", "monotonic": True, "temporality": "delta"},
    "errors": {"type": "sum", "monotonic": True, "temporality": "delta"},
    "duration_ms": {"type": "histogram", "bounds": BOUNDS, "temporality": "delta", "unit": "ms"},
}, "exemplars": {}}
CUMULATIVE = {"metrics": {
    "duration_ms": {"type": "exponential_histogram", "scale": SCALE, "max_size": MAX_SIZE,
                    "unit": "ms"},
}, "exemplars": {}, "attributes": "attributes"}


def _points(requests, kind: str) -> list[tuple[str, str, object]]:
    """(service, metric name, data point) of every point of one kind."""
    out = []
    for request in requests:
        for rm in request.resource_metrics:
            service = attrs(rm.resource.attributes)["service.name"]
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.WhichOneof("data") == kind:
                        out += [(service, m.name, p) for p in getattr(m, kind).data_points]
    return out


def _count(request) -> int:
    return sum(len(getattr(m, m.WhichOneof("data")).data_points)
               for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)


def _exp_index(value: float, scale: int) -> int:
    """The reference bucketing: (base^i, base^(i+1)], from exact integer arithmetic on the
    power-of-two exponent where log2 is exact."""
    m, e = math.frexp(value)
    if m == 0.5:
        return math.ceil((e - 1) * 2.0**scale) - 1
    return math.ceil(math.log2(value) * 2.0**scale) - 1


def check_red(bootstrap: str, topic: str, folder) -> tuple[list, dict]:
    """Read what the Collector's kafka exporter wrote and hold it to the spans the run sent
    (spans.jsonl in `folder`): the DELTA mapping's sums and histograms, the CUMULATIVE one's
    exponential histograms, every exemplar. -> (the requests, durations per series)."""
    spans = [json.loads(line) for line in (folder / "spans.jsonl").read_text().splitlines()]
    served = [s for s in spans if s["kind"] in ("SERVER", "CONSUMER")]
    by_id = {(s["trace_id"], s["span_id"]): s for s in spans}
    # what each series must hold: (service, span.name, status) -> durations
    want: dict[tuple, list[float]] = defaultdict(list)
    for s in served:
        want[(s["service"], s["operation"], s["kind"], s["status"])].append(s["duration_ms"])
    series = len(want)
    # at least: a requests and an errors point per span, a histogram point per series each
    requests = read_requests(bootstrap, topic, ExportMetricsServiceRequest,
                             2 * len(served) + 2 * series, _count)

    def key(service, point):
        a = attrs(point.attributes)
        return service, a["span.name"], a["span.kind"], a["status.code"]

    # explicit bounds, delta: a point per series and request; together they hold every span
    got: dict[tuple, dict] = defaultdict(lambda: {"count": 0, "sum": 0.0, "buckets": None,
                                                  "min": math.inf, "max": -math.inf})
    exemplars = []
    for service, name, p in _points(requests, "histogram"):
        if name != "duration_ms":  # spanmetrics' own: below
            continue
        assert list(p.explicit_bounds) == BOUNDS
        g = got[key(service, p)]
        g["count"] += p.count
        g["sum"] += p.sum
        g["min"], g["max"] = min(g["min"], p.min), max(g["max"], p.max)
        counts = list(p.bucket_counts)
        assert sum(counts) == p.count and len(counts) == len(BOUNDS) + 1
        g["buckets"] = counts if g["buckets"] is None else [a + b for a, b in
                                                            zip(g["buckets"], counts, strict=True)]
        assert p.start_time_unix_nano <= p.time_unix_nano
        exemplars += [(service, key(service, p), e) for e in p.exemplars]
    assert len(got) == series
    for k, durations in want.items():
        buckets = [0] * (len(BOUNDS) + 1)
        for d in durations:
            buckets[bisect_left(BOUNDS, d)] += 1
        assert got[k]["count"] == len(durations), k
        assert got[k]["sum"] == pytest.approx(sum(durations)), k
        assert (got[k]["min"], got[k]["max"]) == (min(durations), max(durations)), k
        assert got[k]["buckets"] == buckets, k

    # exemplars: real spans of the run, of that series, at the span's end, with its duration
    assert exemplars
    for _, k, e in exemplars:
        span = by_id[(e.trace_id.hex(), e.span_id.hex())]
        assert (span["service"], span["operation"], span["kind"], span["status"]) == k
        assert e.as_double == span["duration_ms"]
        assert e.time_unix_nano == nanos(span["start_time"]) + round(span["duration_ms"] * 1e6)

    # the delta sums: requests and errors per series
    sums = Counter()
    for service, name, p in _points(requests, "sum"):
        if name in ("requests", "errors"):
            sums[(name, key(service, p))] += p.as_int
    for k, durations in want.items():
        assert sums[("requests", k)] == len(durations)
        assert sums[("errors", k)] == (len(durations) if k[3] == "ERROR" else 0)

    # exponential, cumulative: the last point of each series holds every span
    last: dict[tuple, object] = {}
    for service, _, p in _points(requests, "exponential_histogram"):
        k = key(service, p)
        if k not in last or p.count >= last[k].count:
            last[k] = p
    assert set(last) == set(want)
    for k, durations in want.items():
        p = last[k]
        assert p.count == len(durations) and p.sum == pytest.approx(sum(durations))
        assert (p.min, p.max) == (min(durations), max(durations))
        assert p.scale <= SCALE and len(p.positive.bucket_counts) <= MAX_SIZE
        expected = Counter(_exp_index(d, p.scale) for d in durations if d > 0)
        found = {p.positive.offset + i: n for i, n in enumerate(p.positive.bucket_counts) if n}
        assert found == dict(expected), k
        assert p.zero_count == sum(1 for d in durations if d == 0)
        for e in p.exemplars:
            assert by_id[(e.trace_id.hex(), e.span_id.hex())]["duration_ms"] == e.as_double
    return requests, want


@pytest.mark.wallclock
def test_red_metrics_histograms_and_exemplars_through_the_collector(
    kafka_bootstrap, kafka_topic, collector, write, tmp_path
):
    out_topic, logs_topic = kafka_topic("red-out"), kafka_topic("logs-out")
    c = collector()
    c.start(c.config(
        exporters={"kafka": {"brokers": [kafka_bootstrap],
                             "metrics": {"topic": out_topic, "encoding": "otlp_json"},
                             "logs": {"topic": logs_topic, "encoding": "otlp_json"}}},
        pipelines={
            "traces": {"receivers": ["otlp"], "exporters": ["spanmetrics"]},
            "metrics": {"receivers": ["otlp", "spanmetrics"], "exporters": ["kafka"]},
            "logs": {"receivers": ["otlp"], "exporters": ["kafka"]},
        },
        receivers=None,
    ) | {"connectors": {"spanmetrics": {"metrics_flush_interval": "1s",
                                        "aggregation_temporality":
                                            "AGGREGATION_TEMPORALITY_CUMULATIVE"}}})
    (tmp_path / "shop.yaml").write_text((EXAMPLES / "topology" / "shop.yaml").read_text())
    when = {"span": {"field": "signal", "equals": "span"},
            "metric": {"field": "signal", "equals": "metric"}}
    config = write("c.yaml", json.dumps({
        "mode": "backfill",
        "input": [{"rate": {"per_second": 20, "start": "-10m", "end": "-9m50s"}}],
        "event": {"topology": {"path": "shop.yaml", "signals": ["spans", "logs", "metrics"]}},
        "output": [
            {"file": {"path": str(tmp_path / "spans.jsonl"), "when": when["span"]}},
            {"otlp": {"endpoint": c.otlp_grpc, "when": when["span"]}},
            {"otlp": {"endpoint": c.otlp_grpc, "signal": "logs",
                      "when": {"field": "signal", "equals": "log"}}},
            {"otlp": {"endpoint": c.otlp_grpc, "signal": "metrics", "when": when["metric"],
                      "mapping": DELTA, "batch": {"max_spans": 97}}},
            {"otlp": {"endpoint": c.otlp_grpc, "signal": "metrics", "when": when["metric"],
                      "mapping": CUMULATIVE}},
        ],
    }))
    result = run_cli("run", config, "--quiet", "--metrics-port", "0")
    assert result.code == 0, result.stderr
    requests, want = check_red(kafka_bootstrap, out_topic, tmp_path)

    # every span's log line arrived, joined to it by its trace and span id
    spans = {(s["trace_id"], s["span_id"]): s for s in map(
        json.loads, (tmp_path / "spans.jsonl").read_text().splitlines())}
    logs = read_requests(kafka_bootstrap, logs_topic, ExportLogsServiceRequest, len(spans),
                         lambda r: sum(len(sl.log_records) for rl in r.resource_logs
                                       for sl in rl.scope_logs))
    joined = {}
    for request in logs:
        for rl in request.resource_logs:
            service = attrs(rl.resource.attributes)["service.name"]
            for record in (r for sl in rl.scope_logs for r in sl.log_records):
                span = spans[(record.trace_id.hex(), record.span_id.hex())]
                assert service == span["service"]
                assert record.severity_text == ("ERROR" if span["status"] == "ERROR" else "INFO")
                assert record.time_unix_nano == nanos(span["start_time"]) + round(
                    span["duration_ms"] * 1e6)
                joined[(record.trace_id.hex(), record.span_id.hex())] = record
    assert set(joined) == set(spans)

    # spanmetrics: the Collector's own RED metrics from the same spans agree on the calls
    # (it flushes every second: read until its cumulative counts have caught up)
    expected = {k: len(v) for k, v in want.items()}
    deadline = time.monotonic() + 60
    while (calls := spanmetrics_calls(requests)) != expected and time.monotonic() < deadline:
        time.sleep(1)
        requests = [parse_otlp_json(m.value(), ExportMetricsServiceRequest)
                    for m in read_topic(kafka_bootstrap, out_topic)]
    assert calls == expected


def spanmetrics_calls(requests) -> dict[tuple, int]:
    """spanmetrics' calls of SERVER and CONSUMER spans, by (service, span name, kind, status):
    the largest cumulative value seen."""
    calls: dict[tuple, int] = {}
    for _, name, p in _points(requests, "sum"):
        if name.endswith("calls"):
            a = attrs(p.attributes)
            kind = a["span.kind"].removeprefix("SPAN_KIND_")
            if kind in ("SERVER", "CONSUMER"):
                status = "ERROR" if a["status.code"] == "STATUS_CODE_ERROR" else "OK"
                k = (a["service.name"], a["span.name"], kind, status)
                calls[k] = max(calls.get(k, 0), p.as_int)
    return calls


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_histograms_on_kafka_through_the_collectors_kafka_receiver(
    kafka_bootstrap, kafka_topic, collector, write, tmp_path, encoding
):
    topic, out_topic = kafka_topic("red-in"), kafka_topic("red-out")
    (tmp_path / "shop.yaml").write_text((EXAMPLES / "topology" / "shop.yaml").read_text())
    kafka = {"bootstrap_servers": kafka_bootstrap, "topic": topic, "encoding": encoding,
             "signal": "metrics", "when": {"field": "signal", "equals": "metric"}}
    config = write("c.yaml", json.dumps({
        "mode": "backfill",
        "input": [{"rate": {"per_second": 20, "start": "-10m", "end": "-9m50s"}}],
        "event": {"topology": {"path": "shop.yaml", "signals": ["spans", "metrics"]}},
        "output": [
            {"file": {"path": str(tmp_path / "spans.jsonl"),
                      "when": {"field": "signal", "equals": "span"}}},
            {"kafka": kafka | {"mapping": DELTA}},
            {"kafka": kafka | {"mapping": CUMULATIVE}},
        ],
    }))
    result = run_cli("run", config, "--quiet", "--metrics-port", "0")
    assert result.code == 0, result.stderr
    c = collector()
    c.start(c.config(
        receivers=kafka_receiver(kafka_bootstrap, kafka_topic.group(),
                                 metrics={"topic": topic, "encoding": encoding}),
        exporters={"kafka": {"brokers": [kafka_bootstrap],
                             "metrics": {"topic": out_topic, "encoding": "otlp_json"}}},
        pipelines={"metrics": {"receivers": ["kafka"], "exporters": ["kafka"]}},
    ))
    assert c.wait_counter("otelcol_receiver_accepted_metric_points", 1, receiver="kafka")
    check_red(kafka_bootstrap, out_topic, tmp_path)
