"""Logs and metrics as OTLP on a real Kafka topic: the examples, and hostile events failing
alone. (Through the Collector's kafka receiver: tests/collector/.)"""

from __future__ import annotations

import json
import os
from collections import Counter

from google.protobuf.json_format import Parse
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from tests.harness.cli import EXAMPLES, run_cli
from tests.harness.fuzz import check_run, read_topics, run_subprocess, write_run

T0 = "2026-02-20T10:00:00+00:00"


def run_example(path, kafka_topic) -> tuple:
    topic = kafka_topic("otlp-example", partitions=2)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_topic.bootstrap, "TOPIC": topic}
    result = run_cli("run", str(path), "--metrics-port", "0", env=env)
    assert result.code == 0, result.stderr
    return result.summary("kafka-0"), read_topics(kafka_topic.bootstrap, topic)


def test_the_basic_example_on_kafka_as_otlp_logs(kafka_topic):
    summary, records = run_example(EXAMPLES / "basic" / "kafka-otlp-logs.yaml", kafka_topic)
    assert summary["produced"] == summary["delivered"] == 3600 and summary["failed"] == 0
    times = []
    for _, key, _, value in records:
        assert key == b"unknown_service"
        [rl] = ExportLogsServiceRequest.FromString(value).resource_logs
        for r in rl.scope_logs[0].log_records:
            assert (r.severity_number, r.severity_text, r.body.string_value) == (
                9, "INFO", "Request processed")
            times.append(r.time_unix_nano)
    assert len(times) == len(set(times)) == 3600  # every second of the hour, once
    assert len(records) < 3600 / 100  # one message per batch, not per event


def test_the_multi_service_example_on_kafka_as_otlp_metrics(kafka_topic):
    path = EXAMPLES / "multi-service" / "kafka-otlp-metrics.yaml"
    summary, records = run_example(path, kafka_topic)
    assert summary["produced"] == summary["delivered"] == 360 * 4 and summary["failed"] == 0
    points: Counter = Counter()
    for _, key, _, value in records:
        request = Parse(value, ExportMetricsServiceRequest())  # otlp_json
        [rm] = request.resource_metrics
        assert rm.resource.attributes[0].value.string_value == key.decode()
        for metric in rm.scope_metrics[0].metrics:
            data = metric.sum if metric.name == "request_count" else metric.gauge
            points[key.decode(), metric.name] += len(data.data_points)
    services = ["api-gateway", "auth-service", "order-service", "payment-service"]
    assert points == {(s, n): 360 for s in services
                      for n in ("cpu_percent", "memory_mb", "request_count")}


def test_hostile_log_events_fail_alone_and_the_topic_holds_the_rest(kafka_topic, tmp_path):
    topic = kafka_topic("otlp-logs", partitions=1)
    good = [json.dumps({"timestamp": T0, "body": body, "service": svc, "n": i})
            for i, (body, svc) in enumerate([
                ("plain", "a"), ({"k": [1, None, 2.5]}, "b"), ("é\u2028\x00", "a"),
                ("x" * 200_000, "a"), (2**80, "c"), (None, "a"), ([], "b")])]
    bad = [
        "not json", "", "[1, 2]", "null",
        json.dumps({"body": "no time"}),
        json.dumps({"timestamp": "2026-13-40", "body": "bad date"}),
        json.dumps({"timestamp": T0, "severity": 99}),
        json.dumps({"timestamp": T0, "severity": {"level": "INFO"}}),
        json.dumps({"timestamp": T0, "trace_id": "g" * 32}),
        json.dumps({"timestamp": T0, "service": ["a"]}),
        json.dumps({"timestamp": T0, "resource": [1]}),
        json.dumps({"timestamp": 1e30}),
    ]
    events = [e for pair in zip(good + [None] * 5, bad, strict=False) for e in pair if e is not None]
    config = write_run(tmp_path, events,
                       f"kafka: {{bootstrap_servers: '{kafka_topic.bootstrap}', topic: '{topic}', "
                       "encoding: otlp_proto, signal: logs, dead_letter: dead.jsonl}")
    run = run_subprocess(["run", str(config), "--quiet"], cwd=tmp_path, timeout=120)
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    delivered, failed, reasons = check_run(run, events, dead)
    assert (delivered, failed) == (len(good), len(bad))
    assert sorted(d["value"] for d in dead) == sorted(bad)
    assert all(r.startswith(("cannot map to a log record: ", "not JSON: ")) for r in reasons)
    got = []
    for _, key, _, value in read_topics(kafka_topic.bootstrap, topic):
        [rl] = ExportLogsServiceRequest.FromString(value).resource_logs
        assert rl.resource.attributes[0].value.string_value == key.decode()
        got += [r.attributes[0].value.int_value for r in rl.scope_logs[0].log_records]
    assert sorted(got) == list(range(len(good)))
