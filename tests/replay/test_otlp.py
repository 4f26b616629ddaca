"""An OTLP dump of the connector's own traces, captured through the real Collector, replayed
with fresh ids into Jaeger: every trace keeps its shape (names, services, parents, offsets
and durations) at the new time, under new ids.

The Jaeger v2 build the tests use has no `file` exporter (its exporters: debug, otlp,
otlphttp, kafka, prometheus, nop, forward, spanmetrics, jaeger_storage_exporter). Its
kafka exporter with `encoding: otlp_json` writes each request as one message, the same
JSON the file exporter writes as one line: the dump is those messages, one per line,
gzipped. The same topic replays directly too (the kafka source, encoding otlp_json)."""

from __future__ import annotations

import gzip
import itertools
import json
import os
from collections import defaultdict
from datetime import UTC, datetime

from tests.harness.cli import EXAMPLES, no_traceback, run_cli
from tests.harness.jaeger import wait_for_trace
from tests.harness.kafka import read_topic

START = "2026-02-20T10:00:00+00:00"
TRACES = 20  # the tracing example, a trace every 2 s for 40 s


def shape_of_dump(spans: list[dict]) -> list[tuple]:
    """(service, name, parent's name, start from the root in us, duration in us), sorted."""
    by_id = {s["spanId"]: s for _, s in spans}
    root = min(int(s["startTimeUnixNano"]) for _, s in spans)
    return sorted(
        (service, s["name"],
         by_id[s["parentSpanId"]]["name"] if s.get("parentSpanId") else None,
         (int(s["startTimeUnixNano"]) - root) // 1000,
         (int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) // 1000)
        for service, s in spans
    )


def shape_in_jaeger(trace: list[dict]) -> list[tuple]:
    by_id = {s["spanID"]: s for s in trace}
    root = min(s["startTime"] for s in trace)
    out = []
    for s in trace:
        parents = [r["spanID"] for r in s.get("references") or [] if r["refType"] == "CHILD_OF"]
        out.append((s["process"]["serviceName"], s["operationName"],
                    by_id[parents[0]]["operationName"] if parents else None,
                    s["startTime"] - root, s["duration"]))
    return sorted(out)


def close(a: list[tuple], b: list[tuple]) -> bool:
    """Equal but for the microsecond that rounding to microseconds may move."""
    return len(a) == len(b) and all(
        x[:3] == y[:3] and abs(x[3] - y[3]) <= 1 and abs(x[4] - y[4]) <= 1
        for x, y in zip(a, b, strict=True))


def test_a_collector_capture_replays_into_jaeger_with_new_ids_and_the_same_shapes(
    kafka_bootstrap, kafka_topic, collector, jaeger, write, tmp_path
):
    captured = kafka_topic("captured", partitions=1)
    c = collector()
    c.start(c.config(
        exporters={"kafka": {"brokers": [kafka_bootstrap],
                             "traces": {"topic": captured, "encoding": "otlp_json"}}},
        pipelines={"traces": {"receivers": ["otlp"], "exporters": ["kafka"]}},
    ))
    record = write("record.yaml", json.dumps({
        "mode": "backfill",
        "input": [{"cron": {"expression": "*/2 * * * * *", "start": START,
                            "end": "2026-02-20T10:00:40+00:00"}}],
        "event": {"script": {"path": str(EXAMPLES / "tracing" / "tracing.py")}},
        "output": [{"otlp": {"endpoint": c.otlp_grpc}}],
    }))
    result = run_cli("run", record, "--seed", "4", "--metrics-port", "0")
    assert result.code == 0, result.stderr[-2000:]
    assert c.wait_counter("otelcol_receiver_accepted_spans", TRACES * 8) == TRACES * 8
    messages = []
    for _ in range(100):  # the exporter sends what it accepted: wait until all of it is there
        messages = read_topic(kafka_bootstrap, captured)
        held = sum(len(ss["spans"]) for m in messages
                   for rs in json.loads(m.value())["resourceSpans"] for ss in rs["scopeSpans"])
        if held >= TRACES * 8:
            break
    dump = tmp_path / "dump.json.gz"
    dump.write_bytes(gzip.compress(b"".join(m.value() + b"\n" for m in messages)))

    originals: dict[str, list] = defaultdict(list)
    for m in messages:
        for rs in json.loads(m.value())["resourceSpans"]:
            service = next(a["value"]["stringValue"] for a in rs["resource"]["attributes"]
                           if a["key"] == "service.name")
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    originals[s["traceId"]].append((service, s))
    assert len(originals) == TRACES

    for name, source in (("file", {"otlp": {"path": "dump.json.gz"}}),
                         ("kafka", {"kafka": {"bootstrap_servers": kafka_bootstrap,
                                              "topic": captured, "encoding": "otlp_json"}})):
        replay = write(f"replay-{name}.yaml", json.dumps({
            "mode": "backfill",
            "input": [{"rate": {"per_second": 10, "start": "-1m", "end": "now"}}],
            "event": {"replay": {**source, "new_ids": True}},
            "output": [{"otlp": {"endpoint": jaeger["otlp_grpc"]}},
                       {"file": {"path": f"sent-{name}.jsonl"}}],
        }))
        result = run_cli("run", replay, "--metrics-port", "0", env=os.environ)
        no_traceback(result.stderr)
        assert result.code == 0, result.stderr[-2000:]
        sent = [json.loads(x) for x in (tmp_path / f"sent-{name}.jsonl").read_text().splitlines()]
        assert len(sent) == TRACES * 8
        new_ids = list(dict.fromkeys(s["trace_id"] for s in sent))
        assert len(new_ids) == TRACES and not set(new_ids) & set(originals)
        now = datetime.now(UTC)
        for new_id, (old_id, spans) in zip(new_ids, originals.items(), strict=True):
            body = wait_for_trace(jaeger["query"], new_id, min_spans=8, timeout=30)
            assert len(body) == 8
            assert close(shape_in_jaeger(body), shape_of_dump(spans)), old_id
            root = min(s["startTime"] for s in body) / 1e6  # at the new time: the last minute
            assert 0 <= now.timestamp() - root <= 120



def test_recorded_logs_and_metric_points_replay_through_the_collector(
    kafka_bootstrap, kafka_topic, collector, write, tmp_path
):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    from tests.harness.otlp import read_requests

    logs_topic, metrics_topic = kafka_topic("logs"), kafka_topic("metrics")
    c = collector()
    c.start(c.config(
        exporters={"kafka": {"brokers": [kafka_bootstrap],
                             "logs": {"topic": logs_topic, "encoding": "otlp_json"},
                             "metrics": {"topic": metrics_topic, "encoding": "otlp_json"}}},
        pipelines={"logs": {"receivers": ["otlp"], "exporters": ["kafka"]},
                   "metrics": {"receivers": ["otlp"], "exporters": ["kafka"]}},
    ))
    base = 1_700_000_000 * 10**9
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]}
    logs = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [
        {"timeUnixNano": str(base + k * 10**9), "severityText": "INFO",
         "body": {"stringValue": f"line {k}"}, "traceId": f"{k + 1:032x}",
         "spanId": f"{k + 1:016x}"} for k in range(20)]}]}]}
    points = {"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": [
        {"name": "cpu", "gauge": {"dataPoints": [
            {"timeUnixNano": str(base + k * 10**9), "asDouble": k / 4,
             "attributes": [{"key": "core", "value": {"intValue": str(k % 2)}}]}
            for k in range(20)]}}]}]}]}
    (tmp_path / "logs.json").write_text(json.dumps(logs) + "\n")
    (tmp_path / "metrics.json").write_text(json.dumps(points) + "\n")
    for signal, mapping in (("logs", {}), ("metrics", {"name": "name", "value": "value"})):
        config = write(f"{signal}.yaml", json.dumps({
            "mode": "backfill",
            "input": [{"recorded": {"speed": 10.0, "start": "-1m"}}],
            "event": {"replay": {"otlp": {"path": f"{signal}.json", "signal": signal},
                                 "new_ids": True}},
            "output": [{"otlp": {"endpoint": c.otlp_grpc, "signal": signal,
                                 **({"mapping": mapping} if mapping else {})}}],
        }))
        result = run_cli("run", config, "--seed", "1", "--metrics-port", "0")
        no_traceback(result.stderr)
        assert result.code == 0, result.stderr[-2000:]

    got_logs = [r for q in read_requests(kafka_bootstrap, logs_topic, ExportLogsServiceRequest,
                                         20, _log_count)
                for rl in q.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert [r.body.string_value for r in got_logs] == [f"line {k}" for k in range(20)]
    assert all(r.trace_id.hex() != f"{k + 1:032x}" for k, r in enumerate(got_logs))
    times = [r.time_unix_nano for r in got_logs]
    assert [b - a for a, b in itertools.pairwise(times)] == [10**8] * 19  # 1 s / 10
    assert abs(times[0] / 1e9 - datetime.now(UTC).timestamp()) < 600  # at the new time

    got_points = [p for q in read_requests(kafka_bootstrap, metrics_topic,
                                           ExportMetricsServiceRequest, 20, _point_count)
                  for rm in q.resource_metrics for sm in rm.scope_metrics
                  for m in sm.metrics for p in m.gauge.data_points]
    assert [(p.as_double, p.attributes[0].value.int_value) for p in got_points] == [
        (k / 4, k % 2) for k in range(20)]


def _log_count(request) -> int:
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


def _point_count(request) -> int:
    return sum(len(m.gauge.data_points) for rm in request.resource_metrics
               for sm in rm.scope_metrics for m in sm.metrics)
