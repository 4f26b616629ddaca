"""Logs and metrics through a real OpenTelemetry Collector (scripts/local-collector), read back
from the Collector's kafka exporter (otlp_json) and compared field by field with what the
script produced: times, severity, body, attributes, resource, ids, values, units, types.

Two ways in: the connector's otlp output into the Collector's otlp receiver (gRPC, HTTP),
and the connector's kafka otlp encodings into the Collector's kafka receiver. Either way the
Collector's own counters agree with what was sent, and it refused nothing."""

import json
from collections import Counter

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from tests.harness.cli import EXAMPLES, run_cli
from tests.harness.collector import kafka_receiver
from tests.harness.kafka import read_topic
from tests.harness.otlp import SEVERITY, attrs, nanos, py, read_requests

# Logs of every shape the mapping takes: severities as text (any case, Python's and syslog's
# names, unknown) and as numbers, bodies of every JSON type, ids or none, a service or none,
# attributes, resource and extra fields. `seq` (an extra field: an attribute) names each.
# Every 7th event cannot be mapped (no timestamp) and every 11th is not JSON: they fail in
# the connector, alone, and never reach the Collector.
LOGS = r'''
import json
import random

LEVELS = ["INFO", "warn", "Warning", "ERROR", "critical", "FATAL", "debug", "trace", "NOTICE",
          5, 17, 0, 24]
BODIES = ["Request processed", {"path": "/cart", "ms": 12.5, "ok": True}, [1, "two", None],
          42, 2.5, False, "ünïcödé \u2603 \\ \"quoted\"", ""]
seq = 0

def produce(params):
    global seq
    seq += 1
    ts = params["timestamp"]
    if seq % 11 == 0:
        return "not json at all"
    event = {"seq": seq, "level": LEVELS[seq % len(LEVELS)],
             "message": BODIES[seq % len(BODIES)], "host": f"h{seq % 3}"}
    if seq % 7:
        event["timestamp"] = (ts.isoformat() if seq % 2 else
                              ts.isoformat().replace("+00:00", "Z"))
    if seq % 4:
        event["service"] = ["checkout", "auth"][seq % 2]
    if seq % 3 == 0:
        event["trace_id"] = "%032x" % random.getrandbits(128)
        event["span_id"] = "%016x" % random.getrandbits(64)
    if seq % 5 == 0:
        event["attributes"] = {"user": {"id": seq, "tags": ["a", "b"]}, "ratio": seq / 8}
        event["resource"] = {"deployment.environment": "test", "host.cpus": 2}
    return json.dumps(event)
'''
LOG_MAPPING = {"body": "message", "severity": "level"}

# Narrow metric events: `name` and `value` fields; a cumulative sum, a gauge (unlisted), and
# values of both number types.
NARROW = r'''
import json
n = 0
def produce(params):
    global n
    n += 1
    ts = params["timestamp"].isoformat()
    return [
        json.dumps({"timestamp": ts, "service": "queue", "name": "queue_depth",
                    "value": n % 9, "queue": f"q{n % 2}"}),
        json.dumps({"timestamp": ts, "service": "queue", "name": "lag_seconds",
                    "value": n / 4, "queue": "q0", "attributes": {"zone": "a"}}),
        json.dumps({"timestamp": ts, "service": "queue", "name": "queue_depth",
                    "value": "seven", "queue": "bad"}),
    ]
'''
WIDE_MAPPING = {"metrics": {
    "cpu_percent": {"type": "gauge", "unit": "%"},
    "memory_mb": {"type": "gauge", "unit": "MiBy"},
    "request_count": {"type": "sum", "monotonic": True, "temporality": "delta"},
}}
NARROW_MAPPING = {"name": "name", "value": "value", "metrics": {
    "queue_depth": {"type": "sum", "temporality": "cumulative", "unit": "{message}"},
}}

def _same(got, want) -> bool:
    """JSON values equal, types included (an int stays an int, 2.5 stays a double)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(
            _same(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(
            _same(g, w) for g, w in zip(got, want, strict=True))
    return type(got) is type(want) and got == want


def _config(write, script_path, output: dict, seconds: int, step: str = "*/2") -> str:
    return write("c.yaml", json.dumps({
        "mode": "backfill",
        "input": [{"cron": {"expression": f"{step} * * * * *", "start": f"-{seconds}s",
                            "end": "now"}}],
        "event": {"script": {"path": str(script_path)}},
        "output": [output, {"file": {"path": "events.jsonl", "mode": "overwrite"}}],
    }))


def _run(write, tmp_path, script, output: dict, seconds: int = 120, step: str = "*/2"):
    if isinstance(script, str):
        path = tmp_path / "script.py"
        path.write_text(script)
    else:
        path = script
    result = run_cli("run", _config(write, path, output, seconds, step), "--seed", "7",
                     "--quiet", "--metrics-port", "0")
    assert "Traceback" not in result.stderr, result.stderr
    name = next(iter(output)) + "-0"
    s = result.accounts(name)
    assert s["produced"] > 0, result.stderr
    events = (tmp_path / "events.jsonl").read_text().split("\n")[:-1]
    assert len(events) == s["produced"]
    return result, s, events


# -- logs -----------------------------------------------------------------------------------


def expected_logs(events: list[str]) -> dict[int, dict]:
    """What each mappable event must become, from the events as the script made them."""
    out = {}
    for text in events:
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        if "timestamp" not in doc:
            continue
        level = doc["level"]
        number = (SEVERITY.get(level.upper(), 0) if isinstance(level, str) else level)
        extra = {k: v for k, v in doc.items() if k not in {
            "timestamp", "level", "message", "service", "trace_id", "span_id", "attributes",
            "resource"}}
        out[doc["seq"]] = {
            "time": nanos(doc["timestamp"]),
            "severity_number": number,
            "severity_text": level if isinstance(level, str) else "",
            "body": doc["message"],
            "attributes": {**doc.get("attributes", {}), **extra},
            "resource": {"service.name": doc.get("service", "unknown_service"),
                         **doc.get("resource", {})},
            "trace_id": doc.get("trace_id", ""),
            "span_id": doc.get("span_id", ""),
        }
    return out


def check_logs(requests: list, want: dict[int, dict]) -> None:
    got: dict[int, dict] = {}
    seen = Counter()
    for request in requests:
        for rl in request.resource_logs:
            resource = attrs(rl.resource.attributes)
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    a = attrs(r.attributes)
                    seen[a["seq"]] += 1
                    got[a["seq"]] = {
                        "time": r.time_unix_nano, "observed": r.observed_time_unix_nano,
                        "severity_number": r.severity_number,
                        "severity_text": r.severity_text,
                        "body": py(r.body), "attributes": a, "resource": resource,
                        "trace_id": r.trace_id.hex(), "span_id": r.span_id.hex(),
                    }
    assert max(seen.values()) == 1, "a log record arrived twice"
    assert sorted(got) == sorted(want)
    for seq, w in want.items():
        g = got[seq]
        assert g.pop("observed") == w["time"], seq
        for key in w:
            assert _same(g[key], w[key]), (seq, key, g[key], w[key])


def _log_pipeline(c, kafka_bootstrap, out_topic, receivers=None, receiver="otlp"):
    return c.config(
        receivers=receivers,
        exporters={"kafka": {"brokers": [kafka_bootstrap],
                             "logs": {"topic": out_topic, "encoding": "otlp_json"}}},
        pipelines={"logs": {"receivers": [receiver], "exporters": ["kafka"]}},
    )


def _collector_counts(c, noun: str, receiver: str, want: int) -> None:
    accepted = c.wait_counter(f"otelcol_receiver_accepted_{noun}", want, receiver=receiver)
    assert accepted == want
    assert c.counter(f"otelcol_receiver_refused_{noun}", receiver=receiver) == 0


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_logs_through_the_collectors_otlp_receiver_arrive_field_by_field(
    kafka_bootstrap, kafka_topic, collector, write, tmp_path, protocol
):
    out_topic = kafka_topic("logs-out")
    c = collector()
    c.start(_log_pipeline(c, kafka_bootstrap, out_topic))
    endpoint = c.otlp_grpc if protocol == "grpc" else c.otlp_http
    result, s, events = _run(write, tmp_path, LOGS, {"otlp": {
        "endpoint": endpoint, "protocol": protocol, "signal": "logs", "mapping": LOG_MAPPING,
        "dead_letter": "dead.jsonl"}})
    want = expected_logs(events)
    assert result.code == 1 and s["delivered"] == len(want) > 30, result.stderr
    reasons = result.summary("otlp-0")
    assert s["failed"] == len(events) - len(want) == sum(
        1 for _ in (tmp_path / "dead.jsonl").read_text().splitlines()), reasons
    _collector_counts(c, "log_records", "otlp", len(want))
    requests = read_requests(kafka_bootstrap, out_topic, ExportLogsServiceRequest, len(want),
                          lambda r: sum(len(sl.log_records) for rl in r.resource_logs
                                        for sl in rl.scope_logs))
    check_logs(requests, want)


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_logs_on_kafka_through_the_collectors_kafka_receiver_arrive_field_by_field(
    kafka_bootstrap, kafka_topic, collector, write, tmp_path, encoding
):
    topic, out_topic = kafka_topic("logs-in"), kafka_topic("logs-out")
    result, s, events = _run(write, tmp_path, LOGS, {"kafka": {
        "bootstrap_servers": kafka_bootstrap, "topic": topic, "encoding": encoding,
        "signal": "logs", "mapping": LOG_MAPPING}})
    want = expected_logs(events)
    assert result.code == 1 and s["delivered"] == len(want) > 30, result.stderr
    c = collector()
    receivers = kafka_receiver(kafka_bootstrap, kafka_topic.group(),
                               logs={"topic": topic, "encoding": encoding})
    c.start(_log_pipeline(c, kafka_bootstrap, out_topic, receivers, "kafka"))
    _collector_counts(c, "log_records", "kafka", len(want))
    requests = read_requests(kafka_bootstrap, out_topic, ExportLogsServiceRequest, len(want),
                          lambda r: sum(len(sl.log_records) for rl in r.resource_logs
                                        for sl in rl.scope_logs))
    check_logs(requests, want)
    keys = {m.key() for m in _messages(kafka_bootstrap, topic)}
    assert keys == {b"checkout", b"auth", b"unknown_service"}  # keyed by service


def _messages(bootstrap: str, topic: str) -> list:

    return read_topic(bootstrap, [topic])


# -- metrics --------------------------------------------------------------------------------


def expected_points(events: list[str], mapping: dict) -> Counter:
    """(service, name, unit, type, temporality, monotonic, start, time, value, attributes)
    of every data point the events must become, counted."""
    specs, narrow = mapping["metrics"], "value" in mapping
    out, first, last = Counter(), None, {}
    for text in events:
        doc = json.loads(text)
        t = nanos(doc["timestamp"])
        if narrow:
            values = [(doc["name"], doc["value"])]
            attributes = {"queue": doc["queue"], **doc.get("attributes", {})}
        else:
            values = [(k, doc[k]) for k in specs]
            attributes = {}
        if any(not isinstance(v, int | float) or isinstance(v, bool) for _, v in values):
            continue
        first = t if first is None else first
        for name, value in values:
            spec = specs.get(name, {"type": "gauge"})
            start = 0
            if spec["type"] == "sum":
                start = first
                if spec.get("temporality") == "delta":
                    series = (doc["service"], name, json.dumps(attributes, sort_keys=True))
                    start = last.get(series, first)
                    last[series] = t
            out[(doc["service"], name, spec.get("unit", ""), spec["type"],
                 spec.get("temporality", "cumulative") if spec["type"] == "sum" else "",
                 spec.get("monotonic", False), start, t, type(value).__name__, value,
                 json.dumps(attributes, sort_keys=True))] += 1
    return out


def got_points(requests: list) -> Counter:
    out = Counter()
    temporality = {1: "delta", 2: "cumulative"}
    for request in requests:
        for rm in request.resource_metrics:
            resource = attrs(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    data = getattr(m, kind)
                    for p in data.data_points:
                        which = p.WhichOneof("value")
                        value = p.as_int if which == "as_int" else p.as_double
                        out[(resource["service.name"], m.name, m.unit, kind,
                             temporality[data.aggregation_temporality] if kind == "sum" else "",
                             data.is_monotonic if kind == "sum" else False,
                             p.start_time_unix_nano, p.time_unix_nano,
                             "int" if which == "as_int" else "float", value,
                             json.dumps(attrs(p.attributes), sort_keys=True))] += 1
    return out


def _metric_pipeline(c, kafka_bootstrap, out_topic, receivers=None, receiver="otlp"):
    return c.config(
        receivers=receivers,
        exporters={"kafka": {"brokers": [kafka_bootstrap],
                             "metrics": {"topic": out_topic, "encoding": "otlp_json"}}},
        pipelines={"metrics": {"receivers": [receiver], "exporters": ["kafka"]}},
    )


def _count_points(request) -> int:
    return sum(len(getattr(m, m.WhichOneof("data")).data_points)
               for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)


@pytest.mark.parametrize("protocol, shape", [
    ("grpc", "wide"), ("http/protobuf", "wide"), ("grpc", "narrow"),
])
def test_metrics_through_the_collectors_otlp_receiver_arrive_point_by_point(
    kafka_bootstrap, kafka_topic, collector, write, tmp_path, protocol, shape
):
    out_topic = kafka_topic("metrics-out")
    c = collector()
    c.start(_metric_pipeline(c, kafka_bootstrap, out_topic))
    endpoint = c.otlp_grpc if protocol == "grpc" else c.otlp_http
    script = EXAMPLES / "multi-service" / "metrics.py" if shape == "wide" else NARROW
    mapping = WIDE_MAPPING if shape == "wide" else NARROW_MAPPING
    result, s, events = _run(write, tmp_path, script, {"otlp": {
        "endpoint": endpoint, "protocol": protocol, "signal": "metrics", "mapping": mapping}},
        seconds=300, step="*/10")
    want = expected_points(events, mapping)
    points = sum(want.values())
    if shape == "wide":  # three points an event
        assert result.code == 0 and points == 3 * s["delivered"] == 3 * 4 * 30, result.stderr
    else:  # the string value fails its event alone
        assert result.code == 1 and (s["delivered"], s["failed"]) == (60, 30), result.stderr
        assert points == 60
    _collector_counts(c, "metric_points", "otlp", points)
    requests = read_requests(kafka_bootstrap, out_topic, ExportMetricsServiceRequest, points,
                          _count_points)
    assert got_points(requests) == want


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_metrics_on_kafka_through_the_collectors_kafka_receiver_arrive_point_by_point(
    kafka_bootstrap, kafka_topic, collector, write, tmp_path, encoding
):
    topic, out_topic = kafka_topic("metrics-in"), kafka_topic("metrics-out")
    result, s, events = _run(write, tmp_path, EXAMPLES / "multi-service" / "metrics.py", {
        "kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic, "encoding": encoding,
                  "signal": "metrics", "mapping": WIDE_MAPPING}}, seconds=300, step="*/10")
    want = expected_points(events, WIDE_MAPPING)
    points = sum(want.values())
    assert result.code == 0 and points == 3 * s["delivered"] == 360, result.stderr
    c = collector()
    receivers = kafka_receiver(kafka_bootstrap, kafka_topic.group(),
                               metrics={"topic": topic, "encoding": encoding})
    c.start(_metric_pipeline(c, kafka_bootstrap, out_topic, receivers, "kafka"))
    _collector_counts(c, "metric_points", "kafka", points)
    requests = read_requests(kafka_bootstrap, out_topic, ExportMetricsServiceRequest, points,
                          _count_points)
    assert got_points(requests) == want
    keys = Counter(m.key() for m in _messages(kafka_bootstrap, topic))
    assert set(keys) == {b"api-gateway", b"auth-service", b"order-service", b"payment-service"}
