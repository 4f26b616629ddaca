"""Kafka records that carry their own time (`timestamp: scheduled | {field: NAME}`), read
back from the real broker, and `validate`'s warnings about Kafka's time rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from confluent_kafka import TIMESTAMP_CREATE_TIME
from confluent_kafka.admin import AdminClient, NewTopic

from tests.harness.cli import run_cli, run_clis
from tests.harness.kafka import read_topic

TWO = """
def produce(params):
    ts = params['timestamp']
    return [f'{{"n": {i}, "timestamp": "{ts.isoformat()}", "ms": {int(ts.timestamp() * 1000)}}}'
            for i in range(2)]
"""


def _ms(text: str) -> int:
    return (datetime.fromisoformat(text) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1
    )


def test_scheduled_record_times_are_the_calls_timestamps(kafka_bootstrap, kafka_topic, write):
    topic = kafka_topic("sched")
    write("s.py", TWO)
    config = write("c.yaml", f"""
        mode: backfill
        input:
          - rate: {{per_second: 7.3, start: "-10m", end: "-5m"}}
          - cron: {{expression: "*/3 * * * * *", count: 2, start: "-10m", end: "-5m"}}
        event: {{script: {{path: s.py}}}}
        output:
          - kafka: {{bootstrap_servers: "{kafka_bootstrap}", topic: {topic}, timestamp: scheduled}}
    """)
    result = run_cli("run", config, "--metrics-port", "0", "--quiet")
    assert result.code == 0, result.stderr
    produced = result.summary()["produced"]
    assert produced == 2 * (2190 + 2 * 100)
    messages = read_topic(kafka_bootstrap, [topic])
    assert len(messages) == produced
    for msg in messages:
        kind, at = msg.timestamp()
        assert kind == TIMESTAMP_CREATE_TIME
        assert at == _ms(json.loads(msg.value())["timestamp"])  # to the millisecond


def test_a_field_gives_the_time_and_an_event_without_it_fails_alone(
    kafka_bootstrap, kafka_topic, write, tmp_path
):
    topic = kafka_topic("field")
    write("s.py", """
def produce(params):
    ts = params['timestamp']
    ms = int(ts.timestamp() * 1000) - 3_600_000
    return ['{"at": %d}' % ms, '{"at": "%s"}' % ts.isoformat(), '{"other": 1}', '{"at": "soon"}']
""")
    dead = tmp_path / "dead.jsonl"
    config = write("c.yaml", f"""
        mode: backfill
        input: [{{cron: {{expression: "* * * * * *", start: "-2m", end: "-1m"}}}}]
        event: {{script: {{path: s.py}}}}
        output:
          - kafka: {{bootstrap_servers: "{kafka_bootstrap}", topic: {topic}, timestamp: {{field: at}}, dead_letter: {dead}}}
    """)
    result = run_cli("run", config, "--metrics-port", "0", "--quiet")
    assert result.code == 1
    summary = result.summary("kafka-0")
    assert (summary["produced"], summary["delivered"], summary["failed"]) == (240, 120, 120)
    assert "field 'at' is missing: 60" in result.stderr
    assert "field 'at' is not an ISO-8601 time or epoch milliseconds: 60" in result.stderr
    assert len(dead.read_text().splitlines()) == 120
    messages = read_topic(kafka_bootstrap, [topic])
    assert len(messages) == 120
    for msg in messages:
        at = json.loads(msg.value())["at"]
        assert msg.timestamp()[1] == (at if isinstance(at, int) else _ms(at))


def test_validate_warns_about_kafkas_time_rules(kafka_bootstrap, kafka_topic, write):
    short = kafka_topic("short", create=False)
    appended = kafka_topic("append", create=False)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.create_topics([
        NewTopic(short, 1, 1, config={"retention.ms": "60000"}),
        NewTopic(appended, 1, 1, config={"message.timestamp.type": "LogAppendTime"}),
    ])
    for future in futures.values():
        future.result(timeout=30)
    write("s.py", "def produce(p):\n    return '{}'\n")

    def validate(name: str, topic: str, window: str, stamp: str = "scheduled") -> tuple:
        config = write(f"{name}.yaml", f"""
            mode: backfill
            input: [{{rate: {{per_second: 1, {window}}}}}]
            event: {{script: {{path: s.py}}}}
            output: [{{kafka: {{bootstrap_servers: "{kafka_bootstrap}", topic: {topic}, timestamp: {stamp}}}}}]
        """)
        return ("validate", config)

    # each validate asks the broker: the six ask at once
    old, ahead, overwritten, recent, stamped_now, missing = run_clis(
        validate("old", short, 'start: "-1h", end: "-50m"'),
        validate("ahead", short, 'start: "+1m", end: "+3h"'),
        validate("overwritten", appended, 'start: "-1m", end: "now"'),
        validate("recent", short, 'start: "-30s", end: "now"'),
        validate("stamped-now", short, 'start: "-1h", end: "-50m"', "now"),
        validate("missing", kafka_topic("never", create=False), 'start: "-1h", end: "-50m"'),
    )
    assert old.code == 0, old.stderr
    assert "warning: output[0].kafka.timestamp: records from" in old.stderr
    assert f"older than topic {short}'s retention.ms (0:01:00)" in old.stderr
    assert ahead.code == 0 and "message.timestamp.after.max.ms" in ahead.stderr
    assert overwritten.code == 0 and "LogAppendTime" in overwritten.stderr
    assert recent.code == 0 and "warning" not in recent.stderr
    assert "warning" not in stamped_now.stderr
    assert missing.code == 0 and "does not exist yet" in missing.stderr


def test_validate_skips_the_check_when_kafka_does_not_answer(write):
    write("s.py", "def produce(p):\n    return '{}'\n")
    config = write("c.yaml", """
        mode: backfill
        input: [{rate: {per_second: 1, start: "-1h", end: "-50m"}}]
        event: {script: {path: s.py}}
        output: [{kafka: {bootstrap_servers: "127.0.0.1:1", topic: t, timestamp: scheduled}}]
    """)
    result = run_cli("validate", config)
    assert result.code == 0
    assert "did not answer within 5 s" in result.stderr and "were not checked" in result.stderr


def test_otlp_encoded_traces_keep_span_times_and_stamp_the_record(
    kafka_bootstrap, kafka_topic, write
):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    topic = kafka_topic("otlp-time")
    write("s.py", """
import json, random
def produce(params):
    ts, trace = params['timestamp'], '%032x' % random.getrandbits(128)
    root = '%016x' % random.getrandbits(64)
    spans = [(root, None)] + [('%016x' % random.getrandbits(64), root) for _ in range(2)]
    return [json.dumps({'trace_id': trace, 'span_id': s, 'parent_span_id': p, 'service': 'svc',
                        'operation': 'op', 'start_time': ts.isoformat(), 'duration_ms': 5})
            for s, p in spans]
""")
    config = write("c.yaml", f"""
        mode: backfill
        input: [{{rate: {{per_second: 2, start: "-3m", end: "-2m"}}}}]
        event: {{script: {{path: s.py}}}}
        output:
          - kafka: {{bootstrap_servers: "{kafka_bootstrap}", topic: {topic}, encoding: otlp_proto, timestamp: scheduled}}
    """)
    result = run_cli("run", config, "--metrics-port", "0", "--quiet", "--seed", "7")
    assert result.code == 0, result.stderr
    messages = read_topic(kafka_bootstrap, [topic])
    assert len(messages) == 120  # one per trace
    for msg in messages:
        request = ExportTraceServiceRequest.FromString(msg.value())
        [span, *_] = request.resource_spans[0].scope_spans[0].spans
        assert msg.timestamp() == (TIMESTAMP_CREATE_TIME, span.start_time_unix_nano // 1_000_000)
