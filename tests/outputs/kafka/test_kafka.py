"""The kafka output against a real Apache Kafka broker (see tests/harness/kafka.py), and
hostile events, each failing alone."""

import json
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from connector.outputs import kafka
from tests.harness.accounts import dead_letters
from tests.harness.cli import EXAMPLES, run_cli, through_outage
from tests.harness.kafka import read_topic


def kafka_config(example: str, bootstrap: str, topic: str, **extra) -> str:
    """The example's config with its output swapped for kafka (written beside the example)."""
    import yaml

    config = yaml.safe_load((EXAMPLES / example / "config.yaml").read_text())
    config["output"] = [{"kafka": {"bootstrap_servers": bootstrap, "topic": topic, **extra}}]
    config["event"]["script"]["path"] = str(EXAMPLES / example / config["event"]["script"]["path"])
    return yaml.safe_dump(config)


@pytest.mark.parametrize("example", ["basic", "multi-service", "tagged", "sessions", "tracing"])
def test_each_example_lands_exactly_once(kafka_bootstrap, kafka_topic, write, example):
    topic = kafka_topic(example)
    key = {"tracing": "trace_id", "sessions": "session_id"}.get(example)
    extra = {"key": key} if key else {}
    config = write("c.yaml", kafka_config(example, kafka_bootstrap, topic, **extra))
    result = run_cli("run", config, "--seed", "1")
    assert result.code == 0, result.stderr
    summary = result.summary("kafka-0")
    assert summary["delivered"] == summary["produced"] > 0 and summary["failed"] == 0
    messages = read_topic(kafka_bootstrap, [topic])
    values = [m.value() for m in messages]
    assert len(values) == summary["delivered"]
    if example != "basic":  # basic's events repeat only when timestamps do; they don't
        assert max(Counter(values).values()) == 1
    if key:
        partitions = defaultdict(set)
        for m in messages:
            event = json.loads(m.value())
            assert m.key().decode() == event[key]
            partitions[event[key]].add(m.partition())
        assert all(len(p) == 1 for p in partitions.values())  # one key, one partition
        assert len({m.partition() for m in messages}) > 1  # and keys spread over partitions
    if example == "tracing":
        traces = defaultdict(list)
        for m in messages:
            span = json.loads(m.value())
            traces[span["trace_id"]].append(span)
        for spans in traces.values():
            ids = {s["span_id"] for s in spans}
            assert len(spans) == 8
            assert all(s["parent_span_id"] in ids for s in spans if s["parent_span_id"])


def test_topic_routing_and_headers(kafka_bootstrap, kafka_topic, write):
    prefix = kafka_topic.prefix + "route"
    write("s.py", """
        import json
        KINDS = ['alpha', 'beta']
        n = 0
        def produce(p):
            global n
            n += 1
            return json.dumps({'kind': KINDS[n % 2], 'n': n, 'meta': {'region': 'eu'}})
        """)
    config = write("c.yaml", f"""
        input: [{{rate: {{per_second: 10, start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:02Z"}}}}]
        event: {{script: {{path: s.py}}}}
        mode: backfill
        output:
          - kafka:
              bootstrap_servers: {kafka_bootstrap}
              topic: "{prefix}.{{kind}}"
              key: n
              headers: {{source: connector, kind: "{{kind}}", region: "{{meta.region}}"}}
        """)
    result = run_cli("run", config)
    assert result.code == 0, result.stderr
    messages = read_topic(kafka_bootstrap, [f"{prefix}.alpha", f"{prefix}.beta"])
    assert len(messages) == 20
    for m in messages:
        event = json.loads(m.value())
        assert m.topic() == f"{prefix}.{event['kind']}"
        assert m.key() == str(event["n"]).encode()
        assert dict(m.headers()) == {"source": b"connector", "kind": event["kind"].encode(),
                                     "region": b"eu"}


def test_unroutable_and_refused_events_are_dead_lettered(
    kafka_bootstrap, kafka_topic, write, tmp_path
):
    topic = kafka_topic.prefix + "dlq"
    write("s.py", """
        import json
        def produce(p):
            return [json.dumps({'id': 1, 'to': 'ok'}), json.dumps({'id': 2}), 'not json',
                    json.dumps({'id': 3, 'to': 'ok', 'pad': 'x' * 5000})]
        """)
    config = write("c.yaml", f"""
        input: [{{rate: {{per_second: 1, start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:02Z"}}}}]
        event: {{script: {{path: s.py}}}}
        mode: backfill
        output:
          - kafka:
              bootstrap_servers: {kafka_bootstrap}
              topic: "{topic}-{{to}}"
              producer: {{message.max.bytes: 4096}}
              dead_letter: dead.jsonl
        """)
    result = run_cli("run", config)
    assert result.code == 1
    assert result.summary("kafka-0") | {} == {
        "timestamps": 2, "produced": 8, "script_errors": 0, "delivered": 2, "failed": 6}
    assert "field 'to' is missing: 2" in result.stderr
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(dead) == 6
    assert {d["error"] for d in dead} == {
        "field 'to' is missing", "not JSON (needed for topic/key/header fields)",
        "MSG_SIZE_TOO_LARGE: Broker: Message size too large: "
        "Unable to produce message: Broker: Message size too large"}
    assert all({"output", "topic", "value", "error"} <= d.keys() for d in dead)
    assert len(read_topic(kafka_bootstrap, [f"{topic}-ok"])) == 2


def test_wrong_bootstrap_says_what_it_waits_for_then_fails_clearly(write):
    from connector.testing import free_port

    port = free_port()  # nobody listens on it
    write("s.py", "def produce(p):\n    return 'x'\n")
    config = write("c.yaml", f"""
        input: [{{rate: {{per_second: 1}}}}]
        event: {{script: {{path: s.py}}}}
        output:
          - kafka:
              bootstrap_servers: 127.0.0.1:{port}
              topic: t
              connect_timeout: 11
              producer: {{sasl.password: hunter2-secret, security.protocol: SASL_PLAINTEXT,
                         sasl.mechanism: PLAIN, sasl.username: u}}
        """)
    started = time.monotonic()
    result = run_cli("run", config, "--log-level", "debug")
    assert time.monotonic() - started < 25
    assert result.code == 1
    connecting = [line for line in result.stderr.splitlines() if "connecting to" in line]
    assert [line.split("connector.connecting: ")[1] for line in connecting] == [
        f"connecting to kafka-0 at 127.0.0.1:{port} (5 s of 11 s)",
        f"connecting to kafka-0 at 127.0.0.1:{port} (10 s of 11 s)",
    ]
    assert all(" INFO " in line for line in connecting)
    assert f"cannot reach Kafka at 127.0.0.1:{port} within 11s (" in result.stderr
    assert f"Connect to ipv4#127.0.0.1:{port} failed: Connection refused)" in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout  # not even at debug
    # the refusals were coalesced: one WARNING with the count, none per attempt (on a loaded
    # machine one more refusal can open a fresh condition just before the stop, reported
    # once as unresolved at shutdown; see the closing note of this wave)
    warnings = [line for line in result.stderr.splitlines() if " WARNING " in line]
    refused = [w for w in warnings if "Connection refused" in w]
    at_stop = [w for w in refused if w.endswith("unresolved at shutdown)")]
    assert refused and len(refused) - len(at_stop) <= 1 and len(at_stop) <= 1, warnings
    assert "brokers are down" not in result.stderr  # the error callback no longer logs


def test_connecting_lines_are_silenced_by_quiet(write):
    write("s.py", "def produce(p):\n    return 'x'\n")
    config = write("c.yaml", """
        input: [{rate: {per_second: 1}}]
        event: {script: {path: s.py}}
        output: [{kafka: {bootstrap_servers: 127.0.0.1:1, topic: t, connect_timeout: 6}}]
        """)
    result = run_cli("run", config, "--quiet")
    assert result.code == 1
    assert "connecting to" not in result.stderr
    assert "cannot reach Kafka at 127.0.0.1:1 within 6s" in result.stderr


def test_a_sasl_failure_is_named_as_such_at_once(kafka_bootstrap, write):
    """SASL against the plaintext listener: librdkafka knows the handshake failed; the run
    says so within seconds instead of waiting connect_timeout and blaming reachability."""
    write("s.py", "def produce(p):\n    return 'x'\n")
    config = write("c.yaml", f"""
        input: [{{rate: {{per_second: 1}}}}]
        event: {{script: {{path: s.py}}}}
        output:
          - kafka:
              bootstrap_servers: {kafka_bootstrap}
              topic: t
              connect_timeout: 30
              producer: {{sasl.password: hunter2-secret, security.protocol: SASL_PLAINTEXT,
                         sasl.mechanism: PLAIN, sasl.username: u, debug: all}}
        """)
    started = time.monotonic()
    result = run_cli("run", config, "--log-level", "debug")
    assert time.monotonic() - started < 15
    assert result.code == 1
    assert f"authentication with Kafka at {kafka_bootstrap} failed: " in result.stderr
    assert "SASL PLAIN mechanism handshake failed" in result.stderr
    assert "cannot reach Kafka" not in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout


def test_unknown_librdkafka_property_is_a_config_error(write):
    write("s.py", "def produce(p):\n    return 'x'\n")
    config = write("c.yaml", """
        input: [{rate: {per_second: 1}}]
        event: {script: {path: s.py}}
        output: [{kafka: {bootstrap_servers: 127.0.0.1:1, topic: t, producer: {linger.msec: 5}}}]
        """)
    result = run_cli("validate", config)
    assert result.code == 2
    assert 'output[0].kafka.producer: No such configuration property: "linger.msec"' in result.stderr


@pytest.mark.wallclock
def test_broker_restart_mid_run_loses_and_duplicates_nothing(private_kafka, write, tmp_path):
    broker = private_kafka  # stopped and started: never the shared one
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    write("s.py", "n = 0\ndef produce(p):\n    global n\n    n += 1\n    return str(n)\n")
    config = write("c.yaml", f"""
        input: [{{rate: {{per_second: 200}}}}]
        event: {{script: {{path: s.py}}}}
        output: [{{kafka: {{bootstrap_servers: {broker.bootstrap}, topic: {topic}}}}}]
        """)
    ran = through_outage(config, 16, broker.stop, broker.start)
    err = ran.stderr
    assert ran.code == 0, err
    produced = int(err.split("events produced: ")[1].split()[0])
    assert "delivered " + str(produced) + ", failed 0" in err
    values = [int(m.value()) for m in read_topic(broker.bootstrap, [topic])]
    assert len(values) == produced and sorted(values) == list(range(1, produced + 1))


# -- hostile events: each fails alone ------------------------------------------------------


@pytest.mark.parametrize("key", [None, "n"])
def test_a_poisoned_event_fails_alone(kafka_bootstrap, kafka_topic, write, tmp_path, key):
    """A lone surrogate at event 500 of 2000: that one fails, dead-lettered; the topic holds
    exactly the other 1999, each once (it used to kill the run and write duplicates)."""
    topic = kafka_topic("poison")
    write("s.py", """
        import json
        n = 0
        def produce(p):
            global n
            n += 1
            return '{"a": "\\udcff"}' if n == 500 else json.dumps({"n": n})
        """)
    extra = f", key: {key}" if key else ""
    config = write("c.yaml", f"""
        mode: backfill
        metrics: {{port: 0}}
        input: [{{rate: {{per_second: 100, start: "2026-01-01T00:00:00Z",
                           end: "2026-01-01T00:00:20Z"}}}}]
        event: {{script: {{path: s.py}}}}
        output:
          - kafka: {{bootstrap_servers: '{kafka_bootstrap}', topic: {topic},
                     dead_letter: dead.jsonl{extra}}}
        """)
    result = run_cli("run", config)
    assert result.code == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.summary("kafka-0") == {
        "timestamps": 2000, "produced": 2000, "script_errors": 0, "delivered": 1999, "failed": 1}
    values = [m.value() for m in read_topic(kafka_bootstrap, topic)]
    assert len(values) == 1999 and len(set(values)) == 1999
    assert {json.loads(v)["n"] for v in values} == set(range(1, 2001)) - {500}
    [dead] = dead_letters(tmp_path / "dead.jsonl")
    assert dead["value"] == '{"a": "\udcff"}'
    assert dead["error"].startswith(kafka.UTF8)


def test_an_invalid_routed_topic_has_one_bounded_reason(kafka_bootstrap, kafka_topic, write,
                                                        tmp_path):
    """A `{field}` topic that renders to an invalid name: the same reason for the first event
    and every later one (it was TOPIC_EXCEPTION, then _UNKNOWN_TOPIC)."""
    prefix = kafka_topic.prefix
    write("s.py", """
        import json
        n = 0
        def produce(p):
            global n
            n += 1
            return json.dumps({"to": "ok" if n % 2 else "bad name!", "n": n})
        """)
    config = write("c.yaml", f"""
        mode: backfill
        metrics: {{port: 0}}
        input: [{{rate: {{per_second: 10, start: "2026-01-01T00:00:00Z",
                           end: "2026-01-01T00:00:10Z"}}}}]
        event: {{script: {{path: s.py}}}}
        output:
          - kafka: {{bootstrap_servers: '{kafka_bootstrap}', topic: '{prefix}{{to}}',
                     dead_letter: dead.jsonl}}
        """)
    result = run_cli("run", config)
    assert result.code == 1, result.stderr
    assert result.summary("kafka-0") | {} == {
        "timestamps": 100, "produced": 100, "script_errors": 0, "delivered": 50, "failed": 50}
    assert f"{kafka.INVALID_TOPIC}: 50" in result.stderr
    dead = dead_letters(tmp_path / "dead.jsonl")
    assert len(dead) == 50
    assert {d["error"] for d in dead} == {f"{kafka.INVALID_TOPIC}: '{prefix}bad name!'"}
    values = [json.loads(m.value())["n"] for m in read_topic(kafka_bootstrap, f"{prefix}ok")]
    assert sorted(values) == list(range(1, 101, 2))


def test_an_invalid_plain_topic_is_a_config_error(write):
    config = write("c.yaml", """
        input: [{rate: {per_second: 1}}]
        event: {script: {path: s.py}}
        output: [{kafka: {bootstrap_servers: x, topic: "no spaces allowed"}}]
        """)
    write("s.py", "def produce(p):\n    return 'x'\n")
    result = run_cli("validate", config)
    assert result.code == 2 and "not a valid Kafka topic name" in result.stderr


@pytest.fixture(autouse=True)
def _here(monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # tests/
