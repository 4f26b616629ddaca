"""Logs and metrics signals, span links and events: event JSON -> OTLP bytes (no network).

Every test reads the bytes back with opentelemetry-proto, so each assertion also checks
the hand-written wire format; the Collector proof of the same lives in tests/collector/.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from google.protobuf.json_format import Parse
from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from connector.config import ConfigError, parse_config
from connector.otlp.codec import otlp_encoder
from connector.otlp.mapping import LogMapping, MappingError, MetricMapping, SpanMapping
from connector.otlp.signals import codec
from connector.otlp.traces import encode_span
from tests.harness.cli import EXAMPLES
from tests.harness.fuzz import json_values
from tests.harness.hypothesis_profiles import budget

T0 = "2026-02-20T10:00:00+00:00"
T0_NS = 1_771_581_600_000_000_000
S = 1_000_000_000
TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def logs_request(events: list[dict], mapping: LogMapping | None = None):
    c = codec("logs", mapping)
    raw = c.request([c.encode(e, c.mapping) for e in events])
    request = ExportLogsServiceRequest.FromString(raw)
    assert request.SerializeToString() == raw  # byte for byte what protobuf would write
    return request


def one_log(event: dict, mapping: LogMapping | None = None):
    [rl] = logs_request([event], mapping).resource_logs
    [sl] = rl.scope_logs
    [record] = sl.log_records
    return rl.resource, record


def attrs(kvs) -> dict:
    return {kv.key: _value(kv.value) for kv in kvs}


def _value(v: AnyValue):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attrs(v.kvlist_value.values)
    return getattr(v, kind) if kind else None


# -- logs -----------------------------------------------------------------------------------


def test_a_log_record_carries_every_mapped_field():
    resource, r = one_log({
        "timestamp": T0, "severity": "ERROR", "body": "disk full", "service": "api",
        "trace_id": TRACE, "span_id": SPAN, "attributes": {"disk": "/dev/sda", "n": 3},
        "resource": {"host.name": "h1", "service.name": "ignored"}, "region": "eu",
    })
    assert attrs(resource.attributes) == {"service.name": "api", "host.name": "h1"}
    assert r.time_unix_nano == r.observed_time_unix_nano == T0_NS
    assert (r.severity_number, r.severity_text) == (SeverityNumber.SEVERITY_NUMBER_ERROR, "ERROR")
    assert r.body.string_value == "disk full"
    assert r.trace_id.hex() == TRACE and r.span_id.hex() == SPAN
    assert attrs(r.attributes) == {"region": "eu", "disk": "/dev/sda", "n": 3}


def test_the_basic_example_goes_out_as_logs_with_its_mapping():
    spec = importlib.util.spec_from_file_location("basic", EXAMPLES / "basic" / "produce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    when = datetime(2026, 2, 20, 10, 0, 5, 250000, tzinfo=UTC)
    event = json.loads(module.produce({"timestamp": when, "tags": ()}))
    resource, r = one_log(event, LogMapping(body="message", severity="level"))
    assert attrs(resource.attributes) == {"service.name": "unknown_service"}  # as the SDKs
    assert r.time_unix_nano == T0_NS + 5_250_000_000
    assert (r.severity_number, r.severity_text) == (9, "INFO")
    assert r.body.string_value == "Request processed"
    assert not r.attributes and not r.trace_id  # level and message are mapped, nothing left
    config = parse_config(
        __import__("yaml").safe_load((EXAMPLES / "basic" / "otlp-logs.yaml").read_text()),
        EXAMPLES / "basic",
    )
    otlp = config.output[0].settings
    assert (otlp.signal, otlp.mapping.body, otlp.mapping.severity) == ("logs", "message", "level")


@pytest.mark.parametrize(("given", "number", "text"), [
    ("info", 9, "info"),
    ("Warning", 13, "Warning"),
    ("WARN", 13, "WARN"),
    ("critical", 21, "critical"),
    ("FATAL", 21, "FATAL"),
    ("debug2", 6, "debug2"),
    ("trace", 1, "trace"),
    ("NOTICE", 0, "NOTICE"),  # unknown text: number 0, the text kept
    ("", 0, ""),
    ("warn" * 1000, 0, "warn" * 1000),  # long: no level, and not kept in the level cache
    (17, 17, ""),
    (0, 0, ""),
    (24, 24, ""),
])
def test_severity_text_or_number(given, number, text):
    _, r = one_log({"timestamp": T0, "severity": given})
    assert (r.severity_number, r.severity_text) == (number, text)


@pytest.mark.parametrize("body", [
    "text", 42, -1.5, True, None, [1, "a", None, {"k": [2]}], {"nested": {"deep": [1.0, False]}},
    2**70,  # past int64: kept as its digits
])
def test_a_log_body_may_be_any_json_value(body):
    _, r = one_log({"timestamp": T0, "body": body})
    if body is None:
        assert not r.HasField("body")
    elif body == 2**70:
        assert r.body.string_value == str(2**70)
    else:
        assert _value(r.body) == body or (isinstance(body, list) and _value(r.body) == body)


@pytest.mark.parametrize(("event", "reason"), [
    ({"severity": "INFO", "body": "x"}, "field 'timestamp' is missing"),
    ({"timestamp": "yesterday"}, "field 'timestamp' is not an ISO-8601 time"),
    ({"timestamp": True}, "field 'timestamp' is not an ISO-8601 time"),
    ({"timestamp": 1e300}, "field 'timestamp' is outside what OTLP can carry (1970-2554)"),
    ({"timestamp": T0, "severity": 25}, "field 'severity' must be a severity name or a number 0-24"),
    ({"timestamp": T0, "severity": -1}, "field 'severity' must be a severity name or a number 0-24"),
    ({"timestamp": T0, "severity": True}, "field 'severity' must be a severity name or a number 0-24"),
    ({"timestamp": T0, "severity": ["INFO"]},
     "field 'severity' must be a severity name or a number 0-24"),
    ({"timestamp": T0, "service": 7}, "field 'service' must be a string"),
    ({"timestamp": T0, "trace_id": "xyz"}, "field 'trace_id' must be 32 hex characters"),
    ({"timestamp": T0, "span_id": "0" * 16}, "field 'span_id' is all zeros, which OTLP treats as invalid"),
    ({"timestamp": T0, "attributes": [1]}, "field 'attributes' must be an object"),
    ({"timestamp": T0, "resource": "r"}, "field 'resource' must be an object"),
])
def test_a_log_event_that_does_not_fit_fails_with_a_bounded_reason(event, reason):
    c = codec("logs")
    with pytest.raises(MappingError) as caught:
        c.encode(event, c.mapping)
    assert caught.value.reason == reason


def test_log_fields_are_renamed_by_the_mapping():
    mapping = LogMapping(timestamp="ts", severity="lvl", body="msg", service="svc",
                         trace_id="tid", span_id="sid", attributes="attrs", resource="res")
    resource, r = one_log({"ts": T0, "lvl": "warn", "msg": "m", "svc": "s", "tid": TRACE,
                           "sid": SPAN, "attrs": {"a": 1}, "res": {"r": 2},
                           "timestamp": "not mapped: an attribute"}, mapping)
    assert attrs(resource.attributes) == {"service.name": "s", "r": 2}
    assert (r.severity_number, r.body.string_value, r.trace_id.hex()) == (13, "m", TRACE)
    assert attrs(r.attributes) == {"timestamp": "not mapped: an attribute", "a": 1}


def test_logs_group_one_resource_each():
    request = logs_request([
        {"timestamp": T0, "service": "a", "body": 1},
        {"timestamp": T0, "service": "b", "body": 2},
        {"timestamp": T0, "service": "a", "body": 3},
        {"timestamp": T0, "service": "a", "resource": {"zone": "z"}, "body": 4},
    ])
    got = [(attrs(rl.resource.attributes), [r.body.int_value for r in rl.scope_logs[0].log_records])
           for rl in request.resource_logs]
    assert got == [({"service.name": "a"}, [1, 3]), ({"service.name": "b"}, [2]),
                   ({"service.name": "a", "zone": "z"}, [4])]
    assert request.resource_logs[0].scope_logs[0].scope.name == "connector"


# -- metrics --------------------------------------------------------------------------------

WIDE = MetricMapping(metrics={
    "cpu_percent": {"type": "gauge", "unit": "%"},
    "memory_mb": {"type": "gauge", "unit": "MiBy"},
    "request_count": {"type": "sum", "monotonic": True, "temporality": "delta"},
})


def metrics_request(events: list[dict], mapping: MetricMapping, c=None):
    c = c or codec("metrics", mapping)
    raw = c.request([c.encode(e, c.mapping) for e in events])
    request = ExportMetricsServiceRequest.FromString(raw)
    assert request.SerializeToString() == raw
    return request


def by_name(request) -> dict:
    """{(service, metric name): Metric} (each name once per resource)."""
    out = {}
    for rm in request.resource_metrics:
        service = attrs(rm.resource.attributes)["service.name"]
        [sm] = rm.scope_metrics
        for metric in sm.metrics:
            assert (service, metric.name) not in out, "one Metric per name and resource"
            out[service, metric.name] = metric
    return out


def tick(seconds: int, service: str = "api", **values) -> dict:
    when = datetime(2026, 2, 20, 10, tzinfo=UTC) + timedelta(seconds=seconds)
    return {"timestamp": when.isoformat(), "service": service, **values}


def test_the_multi_service_example_goes_out_as_metrics_with_its_mapping():
    spec = importlib.util.spec_from_file_location("ms", EXAMPLES / "multi-service" / "metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = parse_config(
        __import__("yaml").safe_load(
            (EXAMPLES / "multi-service" / "otlp-metrics.yaml").read_text()),
        EXAMPLES / "multi-service",
    )
    otlp = config.output[0].settings
    assert otlp.signal == "metrics"
    events = []
    for k in range(3):
        when = datetime(2026, 2, 20, 10, tzinfo=UTC) + timedelta(seconds=10 * k)
        events += [json.loads(e) for e in module.produce({"timestamp": when, "tags": ()})]
    metrics = by_name(metrics_request(events, otlp.mapping))
    assert len(metrics) == 4 * 3  # four services, three metrics each
    for service in module.SERVICES:
        mine = [e for e in events if e["service"] == service]
        cpu, mem, count = (metrics[service, n] for n in ("cpu_percent", "memory_mb", "request_count"))
        assert (cpu.unit, mem.unit) == ("%", "MiBy")
        assert [p.as_double for p in cpu.gauge.data_points] == [e["cpu_percent"] for e in mine]
        assert [p.as_int for p in mem.gauge.data_points] == [e["memory_mb"] for e in mine]
        assert count.sum.is_monotonic
        assert count.sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
        points = count.sum.data_points
        assert [p.as_int for p in points] == [e["request_count"] for e in mine]
        times = [T0_NS + 10 * k * S for k in range(3)]
        assert [p.time_unix_nano for p in points] == times
        # delta: each point covers the time since the previous point of its series
        assert [p.start_time_unix_nano for p in points] == [T0_NS, *times[:-1]]
        assert all(not p.attributes for p in points)
        assert all(p.start_time_unix_nano == 0 for p in cpu.gauge.data_points)


def test_cumulative_sums_start_at_the_run_start():
    mapping = MetricMapping(metrics={"total": {"type": "sum", "monotonic": True}})
    c = codec("metrics", mapping)
    request = metrics_request([tick(5, total=1), tick(15, total=3), tick(25, "db", total=9)],
                              mapping, c)
    metrics = by_name(request)
    starts = [p.start_time_unix_nano for m in metrics.values() for p in m.sum.data_points]
    assert starts == [T0_NS + 5 * S] * 3  # the first point this output saw
    assert metrics["api", "total"].sum.aggregation_temporality == 2  # cumulative
    # a later request from the same output keeps the same start
    later = metrics_request([tick(35, total=4)], mapping, c)
    assert by_name(later)["api", "total"].sum.data_points[0].start_time_unix_nano == T0_NS + 5 * S


def test_delta_series_are_kept_apart_by_resource_name_and_attributes():
    mapping = MetricMapping(metrics={"n": {"type": "sum", "temporality": "delta"}})
    c = codec("metrics", mapping)
    events = [tick(0, n=1, route="/a"), tick(10, n=2, route="/b"), tick(20, n=3, route="/a"),
              tick(30, "db", n=4, route="/a"), tick(40, n=5, route="/b")]
    request = metrics_request(events, mapping, c)
    points = {(svc, attrs(p.attributes)["route"], p.as_int): p.start_time_unix_nano
              for (svc, _), m in by_name(request).items() for p in m.sum.data_points}
    assert points == {
        ("api", "/a", 1): T0_NS,  # a series' first point: the run start
        ("api", "/b", 2): T0_NS,
        ("api", "/a", 3): T0_NS,  # previous /a point at 0 s
        ("db", "/a", 4): T0_NS,
        ("api", "/b", 5): T0_NS + 10 * S,
    }


def test_narrow_metric_names_are_not_all_kept():
    mapping = MetricMapping(name="metric", value="v")
    c = codec("metrics", mapping)
    events = [tick(0, metric=f"m{i}-" + "x" * 300, v=i) for i in range(50)]
    metrics = by_name(metrics_request(events, mapping, c))
    assert len(metrics) == 50
    assert c.encode._headers == {}  # the encoder's header cache keeps no long names


def test_narrow_events_name_their_metric():
    mapping = MetricMapping(name="metric", value="v",
                            metrics={"errors": {"type": "sum", "monotonic": True, "unit": "1"}})
    events = [tick(0, metric="latency_ms", v=12.5, route="/x"), tick(0, metric="errors", v=2),
              tick(10, metric="latency_ms", v=14, route="/x")]
    metrics = by_name(metrics_request(events, mapping))
    latency, errors = metrics["api", "latency_ms"], metrics["api", "errors"]
    assert latency.WhichOneof("data") == "gauge"  # unlisted: a gauge
    assert [(p.WhichOneof("value"), attrs(p.attributes)) for p in latency.gauge.data_points] == [
        ("as_double", {"route": "/x"}), ("as_int", {"route": "/x"})]
    assert (errors.unit, errors.sum.is_monotonic, errors.sum.data_points[0].as_int) == ("1", True, 2)


@pytest.mark.parametrize(("event", "reason"), [
    (tick(0, cpu_percent=True), "field 'cpu_percent' must be a number (not a bool or a string)"),
    (tick(0, cpu_percent="12"), "field 'cpu_percent' must be a number (not a bool or a string)"),
    (tick(0, cpu_percent=[1]), "field 'cpu_percent' must be a number (not a bool or a string)"),
    (tick(0, memory_mb=2**63), "field 'memory_mb' is outside int64"),
    (tick(0, other=1), "none of the mapped metric fields is set"),
    ({"service": "a", "cpu_percent": 1.0}, "field 'timestamp' is missing"),
    (tick(0, cpu_percent=1.0, attributes="x"), "field 'attributes' must be an object"),
])
def test_a_metric_event_that_does_not_fit_fails_with_a_bounded_reason(event, reason):
    c = codec("metrics", WIDE)
    with pytest.raises(MappingError) as caught:
        c.encode(event, c.mapping)
    assert caught.value.reason == reason


def test_a_failed_event_leaves_no_delta_state():
    c = codec("metrics", WIDE)
    c.encode(tick(0, request_count=1), WIDE)
    with pytest.raises(MappingError):  # request_count fine, cpu_percent not: the event fails
        c.encode(tick(10, request_count=2, cpu_percent="x"), WIDE)
    request = metrics_request([tick(20, request_count=3)], WIDE, c)
    [point] = by_name(request)["api", "request_count"].sum.data_points
    assert point.start_time_unix_nano == T0_NS  # from the point at 0 s, not the failed one


@pytest.mark.parametrize(("mapping", "message"), [
    ("{}", "metrics: name the value fields of wide events"),
    ("{value: v}", "narrow events need both name and value"),
    ("{metrics: {x: {type: gauge, monotonic: true}}}", "monotonic applies to type: sum only"),
    ("{metrics: {x: {type: summary}}}", "mapping.metrics.x.type"),
    ("{metrics: {x: {temporality: sometimes}}}", "mapping.metrics.x.temporality"),
    ("{metrics: {x: {}}, body: message}", "mapping.body: unknown key"),
])
def test_a_bad_metrics_mapping_is_a_config_error(tmp_path, mapping, message):
    (tmp_path / "s.py").write_text("def produce(p):\n    return '{}'\n")
    raw = __import__("yaml").safe_load(
        "input: [{cron: {expression: '* * * * * *'}}]\nevent: {script: {path: s.py}}\n"
        f"output: [{{otlp: {{endpoint: 'localhost:4317', signal: metrics, mapping: {mapping}}}}}]"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, tmp_path)
    assert message in str(caught.value)
    assert "output[0].otlp" in str(caught.value)


def test_each_signal_has_its_own_mapping_keys(tmp_path):
    (tmp_path / "s.py").write_text("def produce(p):\n    return '{}'\n")

    def config(output: str):
        raw = __import__("yaml").safe_load(
            "input: [{cron: {expression: '* * * * * *'}}]\nevent: {script: {path: s.py}}\n"
            f"output: [{output}]")
        return parse_config(raw, tmp_path)

    with pytest.raises(ConfigError) as caught:  # a span field is no log field
        config("{otlp: {endpoint: 'h:4317', signal: logs, mapping: {operation: op}}}")
    assert "output[0].otlp.mapping.operation: unknown key" in caught.value.problems
    with pytest.raises(ConfigError) as caught:
        config("{kafka: {bootstrap_servers: 'h:9092', topic: t, signal: logs}}")
    assert "signal logs needs encoding otlp_proto or otlp_json" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        config("{kafka: {bootstrap_servers: 'h:9092', topic: t, encoding: otlp_json, "
               "signal: metrics, key: service, mapping: {metrics: {cpu: {}}}}}")
    assert "one message per batch and resource, keyed by service name" in str(caught.value)
    logs = config("{kafka: {bootstrap_servers: 'h:9092', topic: t, encoding: otlp_proto, "
                  "signal: logs, mapping: {body: msg}}}").output[0].settings
    assert isinstance(logs.mapping, LogMapping) and logs.mapping.body == "msg"


# -- span_mapping(): the traces output's ---------------------------------------------------


def test_span_mapping_is_a_traces_outputs_never_the_first_outputs(tmp_path):
    (tmp_path / "s.py").write_text("def produce(p):\n    return '{}'\n")

    def mapping(*outputs: str) -> SpanMapping:
        raw = __import__("yaml").safe_load(
            "input: [{cron: {expression: '* * * * * *'}}]\nevent: {script: {path: s.py}}\n"
            f"output: [{', '.join(outputs)}]")
        return parse_config(raw, tmp_path).span_mapping()

    logs = "{otlp: {endpoint: 'h:4317', signal: logs, mapping: {service: svc}}}"
    raw_kafka = "{kafka: {bootstrap_servers: 'h:9092', topic: t}}"
    traces = "{otlp: {endpoint: 'h:4317', mapping: {service: app, trace_id: tid}}}"
    kafka_traces = ("{kafka: {bootstrap_servers: 'h:9092', topic: t, encoding: otlp_json, "
                    "mapping: {trace_id: traceId}}}")
    assert (mapping(logs, raw_kafka, traces).service, mapping(logs, traces).trace_id) == (
        "app", "tid")
    assert mapping(raw_kafka, kafka_traces).trace_id == "traceId"
    assert mapping(logs, raw_kafka) == SpanMapping()  # nothing sends spans: the defaults
    assert mapping("{stdout: {}}") == SpanMapping()


# -- the Kafka otlp encodings for logs and metrics -----------------------------------------


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_kafka_logs_one_message_per_batch_and_resource_keyed_by_service(encoding):
    events = [json.dumps({"timestamp": T0, "service": s, "body": f"{s}-{i}", "trace_id": TRACE,
                          "span_id": SPAN})
              for i, s in enumerate(["a", "b", "a", "c", "a"])]
    events.insert(2, "not json")
    events.insert(3, json.dumps({"body": "no time"}))
    failed = []
    out = list(otlp_encoder(encoding, LogMapping(), signal="logs")(
        events, lambda reason, event, detail=None: failed.append((reason, event, detail))))
    assert failed == [
        ("not JSON: cannot map to a log record", "not json",
         "invalid literal, expected 'null': line 1 column 1 (char 0)"),
        ("cannot map to a log record: field 'timestamp' is missing", events[3], None),
    ]
    assert [key for key, _, _ in out] == ["a", "b", "c"]
    for key, payload, members in out:
        request = (ExportLogsServiceRequest.FromString(payload) if encoding == "otlp_proto"
                   else Parse(_unhex(payload), ExportLogsServiceRequest()))
        [rl] = request.resource_logs
        assert attrs(rl.resource.attributes) == {"service.name": key}
        records = rl.scope_logs[0].log_records
        assert [r.body.string_value for r in records] == [json.loads(m)["body"] for m in members]
        assert all(r.trace_id.hex() == TRACE and r.span_id.hex() == SPAN for r in records)


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_kafka_metrics_one_message_per_batch_and_resource(encoding):
    events = [json.dumps(tick(10 * k, s, cpu_percent=1.5, memory_mb=7, request_count=k))
              for k in range(3) for s in ("api", "db")]
    out = list(otlp_encoder(encoding, WIDE, signal="metrics")(events, pytest.fail))
    assert [(key, len(members)) for key, _, members in out] == [("api", 3), ("db", 3)]
    for key, payload, _ in out:
        request = (ExportMetricsServiceRequest.FromString(payload) if encoding == "otlp_proto"
                   else Parse(payload, ExportMetricsServiceRequest()))
        metrics = by_name(request)
        assert sorted(metrics) == [(key, "cpu_percent"), (key, "memory_mb"), (key, "request_count")]
        assert [p.as_int for p in metrics[key, "request_count"].sum.data_points] == [0, 1, 2]


def test_kafka_logs_over_the_message_limit_split_by_resource():
    events = [json.dumps({"timestamp": T0, "service": "a", "body": "x" * 1000, "n": i})
              for i in range(200)]
    events.append(json.dumps({"timestamp": T0, "service": "a", "body": "y" * 60_000}))
    failed = []
    out = list(otlp_encoder("otlp_proto", LogMapping(), max_bytes=20_000, signal="logs")(
        events, lambda reason, event, detail=None: failed.append((reason, event))))
    assert failed == [("log record too large for one message (message.max.bytes)", events[-1])]
    assert len(out) >= 10 and all(key == "a" and len(p) <= 20_000 for key, p, _ in out)
    got = [r.attributes[0].value.int_value for _, p, _ in out
           for r in ExportLogsServiceRequest.FromString(p).resource_logs[0].scope_logs[0].log_records]
    assert got == list(range(200))


def _unhex(payload: bytes) -> bytes:
    """OTLP/JSON writes ids as hex; protobuf's JSON parser expects base64."""
    import base64

    doc = orjson.loads(payload)
    for rl in doc["resourceLogs"]:
        for sl in rl["scopeLogs"]:
            for r in sl["logRecords"]:
                for k in ("traceId", "spanId"):
                    if k in r:
                        r[k] = base64.b64encode(bytes.fromhex(r[k])).decode()
    return orjson.dumps(doc)


# -- span links and span events ------------------------------------------------------------

LINKED = "0af7651916cd43dd8448eb211c80319c"


def span(**fields) -> dict:
    return {"trace_id": TRACE, "span_id": SPAN, "service": "batch", "operation": "consume",
            "start_time": T0, "duration_ms": 50, **fields}


def test_links_and_events_become_span_links_and_events():
    doc = span(
        links=[{"trace_id": LINKED, "span_id": "b7ad6b7169203331", "attributes": {"i": 1}},
               {"trace_id": TRACE, "span_id": "b9c7c989f97918e1"}],
        events=[{"name": "dequeued", "time": "2026-02-20T10:00:00.010+00:00",
                 "attributes": {"queue": "orders"}},
                {"name": "acked", "time": T0_NS / S + 0.04}],
        error_message="boom", status="ERROR",
    )
    _, _, raw = encode_span(doc)
    s = Span.FromString(raw)
    assert s.SerializeToString() == raw
    assert [(link.trace_id.hex(), link.span_id.hex(), attrs(link.attributes)) for link in s.links] == [
        (LINKED, "b7ad6b7169203331", {"i": 1}), (TRACE, "b9c7c989f97918e1", {})]
    assert [(e.name, e.time_unix_nano, attrs(e.attributes)) for e in s.events] == [
        ("dequeued", T0_NS + 10_000_000, {"queue": "orders"}),
        ("acked", T0_NS + 40_000_000, {}),
        ("exception", T0_NS + 50_000_000, {"exception.message": "boom"}),  # still made
    ]
    assert not s.attributes  # links and events are no longer attributes


def test_links_and_events_fields_are_renamed_by_the_mapping():
    mapping = SpanMapping(links="follows", events="marks")
    doc = span(follows=[{"trace_id": LINKED, "span_id": "b7ad6b7169203331"}],
               marks=[{"name": "m", "time": T0}], links="now an attribute")
    s = Span.FromString(encode_span(doc, mapping)[2])
    assert len(s.links) == 1 and [e.name for e in s.events] == ["m"]
    assert attrs(s.attributes) == {"links": "now an attribute"}


@pytest.mark.parametrize(("fields", "reason"), [
    ({"links": {"trace_id": LINKED}}, "field 'links' must be a list of {trace_id, span_id, attributes}"),
    ({"links": ["x"]}, "field 'links' must be a list of {trace_id, span_id, attributes}"),
    ({"links": [{"trace_id": LINKED}]}, "field 'links': field 'span_id' is missing"),
    ({"links": [{"trace_id": "zz", "span_id": SPAN}]},
     "field 'links': field 'trace_id' must be 32 hex characters"),
    ({"links": [{"trace_id": LINKED, "span_id": SPAN, "attributes": 5}]},
     "field 'links': field 'attributes' must be an object"),
    ({"events": "boot"}, "field 'events' must be a list of {name, time, attributes}"),
    ({"events": [{"time": T0}]}, "field 'events': field 'name' is missing"),
    ({"events": [{"name": "e"}]}, "field 'events': field 'time' is missing"),
    ({"events": [{"name": "e", "time": "later"}]},
     "field 'events': field 'time' is not an ISO-8601 time"),
    ({"events": [{"name": ["e"], "time": T0}]}, "field 'events': field 'name' is missing"),
])
def test_bad_links_and_events_fail_the_span_with_a_bounded_reason(fields, reason):
    with pytest.raises(MappingError) as caught:
        encode_span(span(**fields))
    assert caught.value.reason == reason


def test_empty_links_and_events_are_a_plain_span():
    plain = encode_span(span())
    assert encode_span(span(links=[], events=[])) == plain
    assert encode_span(span(links=None, events=None)) == plain


# -- hostile events: every event maps or fails with a bounded reason --------------------------

ODD_LOG = {
    "timestamp": [T0, "2026-02-30T00:00:00Z", "1969-12-31T23:59:59Z", "", 1e300, -1, 1.5e9, 2**70,
                  True, None, "2026-02-20"],
    "severity": ["INFO", "warning", "", "x" * 300, 0, 24, 25, -1, 2**70, 1.5, True, None],
    "trace_id": [TRACE, "0" * 32, "g" * 32, "a" * 31, "", None, 5],
    "span_id": [SPAN, "0" * 16, "z" * 16, None],
    "service": ["s", "", None, 1, ["s"], "é\x00"],
}
ODD_METRIC = {
    "timestamp": ODD_LOG["timestamp"],
    "service": ODD_LOG["service"],
    "cpu": [1.5, 0, -1, 2**63, 2**63 - 1, -(2**63), 1e308, True, "1", None, [1], {"v": 1}],
    "n": [3, 0.5, None, False],
}


@st.composite
def odd_docs(draw, odd: dict):
    doc = {"timestamp": T0}
    for name, values in odd.items():
        choice = draw(st.sampled_from(["keep", "odd", "any", "drop"]))
        if choice == "odd":
            doc[name] = draw(st.sampled_from(values))
        elif choice == "any":
            doc[name] = draw(json_values)
    for name in ("attributes", "resource", "body", "extra"):
        if draw(st.booleans()):
            doc[name] = draw(json_values)
    return doc


def _bounded(reason: str, doc: dict) -> None:
    for value in doc.values():
        if isinstance(value, str) and len(value) >= 8 and value not in ("timestamp",):
            assert value not in reason, (reason, value)
    assert len(reason) <= 120


@budget(150)
@given(odd_docs(ODD_LOG))
@example({"timestamp": T0, "severity": 2**70})
@example({"timestamp": T0, "body": {"a": [None, {"": 1}]}, "attributes": {"": None}})
def test_a_hostile_log_event_maps_or_fails_with_a_bounded_reason(doc):
    doc = orjson.loads(json.dumps(doc)) if _orjson_reads(doc) else None
    if doc is None:
        return
    c = codec("logs")
    try:
        item = c.encode(doc, c.mapping)
    except MappingError as exc:
        _bounded(exc.reason, doc)
        return
    [rl] = ExportLogsServiceRequest.FromString(c.request([item])).resource_logs
    [record] = rl.scope_logs[0].log_records
    assert record.time_unix_nano == record.observed_time_unix_nano
    assert 0 <= record.severity_number <= 24


@budget(150)
@given(st.lists(odd_docs(ODD_METRIC), max_size=6))
def test_hostile_metric_events_map_or_fail_alone(docs):
    mapping = MetricMapping(metrics={"cpu": {"unit": "%"},
                                     "n": {"type": "sum", "temporality": "delta"}})
    events = [json.dumps(d) for d in docs] + ["not json", "[]"]
    failed = []
    out = list(otlp_encoder("otlp_proto", mapping, signal="metrics")(
        events, lambda reason, event, detail=None: failed.append((reason, event))))
    for reason, _ in failed:
        assert reason.startswith(("cannot map to a metric: ", "not JSON: cannot map to a metric"))
    sent = [e for _, _, members in out for e in members]
    assert sorted(sent + [e for _, e in failed]) == sorted(events)
    for key, payload, members in out:
        request = ExportMetricsServiceRequest.FromString(payload)
        assert {rm.resource.attributes[0].value.string_value for rm in request.resource_metrics} == {key}
        points = sum(len(getattr(m, m.WhichOneof("data")).data_points)
                     for rm in request.resource_metrics for m in rm.scope_metrics[0].metrics)
        assert points >= len(members)
        for rm in request.resource_metrics:
            for m in rm.scope_metrics[0].metrics:
                if m.name == "n":
                    for p in m.sum.data_points:
                        assert p.start_time_unix_nano <= p.time_unix_nano


def _orjson_reads(doc) -> bool:
    try:
        orjson.loads(json.dumps(doc))
        return True
    except orjson.JSONDecodeError:  # an integer orjson does not read: fails as not JSON
        return False
