"""The kafka output on a secured broker (scripts/local-kafka start --secure, a broker of this
test process's own): SASL_SSL with SCRAM-SHA-512 and with PLAIN, and SSL with a client
certificate (mTLS), each read back; transactions, `timestamp: scheduled` and validate's
topic checks over a secured listener. The password comes from the environment."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
import yaml
from confluent_kafka import TIMESTAMP_CREATE_TIME

from tests.harness.cli import run_cli
from tests.harness.kafka import create_topic, read_topic

pytestmark = pytest.mark.timeout(240)

SCRIPT = """
import json
def produce(params):
    ts = params['timestamp']
    return [json.dumps({"at": ts.isoformat(), "i": i}) for i in range(2)]
"""


def _config(write, secure, listener: str, topic: str, **kafka) -> str:
    write("s.py", SCRIPT)
    output = {"bootstrap_servers": secure.address(listener), "topic": topic,
              "connect_timeout": 20, "producer": secure.producer(listener), **kafka}
    config = {"mode": "backfill", "metrics": {"port": 0},
              "input": [{"rate": {"per_second": 5, "start": "2026-01-01T00:00:00Z",
                                  "end": "2026-01-01T00:00:04Z"}}],
              "event": {"script": {"path": "s.py"}}, "output": [{"kafka": output}]}
    return write(f"{listener}-{uuid.uuid4().hex[:6]}.yaml", yaml.safe_dump(config))


def _ms(text: str) -> int:
    return round(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


@pytest.mark.parametrize("listener", ["scram", "plain", "mtls"])
def test_each_secured_listener_delivers_and_reads_back_with_scheduled_times(
    secure_kafka, write, listener
):
    topic = f"secure-{listener}-{uuid.uuid4().hex[:8]}"
    create_topic(secure_kafka.plaintext, topic)
    config = _config(write, secure_kafka, listener, topic, timestamp="scheduled")
    result = run_cli("run", str(config), "--quiet", env=secure_kafka.env())
    assert result.code == 0, result.stderr
    assert result.summary("kafka-0")["delivered"] == 40
    messages = read_topic(secure_kafka.plaintext, topic)
    assert len(messages) == 40
    assert len({m.value() for m in messages}) == 40
    for msg in messages:
        kind, at = msg.timestamp()
        assert kind == TIMESTAMP_CREATE_TIME
        assert at == _ms(json.loads(msg.value())["at"])  # the scheduled time, to the ms
    assert secure_kafka.password not in result.stderr + result.stdout


def test_transactions_commit_over_sasl_ssl_and_a_read_committed_reader_sees_them(
    secure_kafka, write
):
    topic = f"secure-tx-{uuid.uuid4().hex[:8]}"
    create_topic(secure_kafka.plaintext, topic)
    tx = {"id": f"secure-{uuid.uuid4().hex[:6]}", "marker_topic": f"marks-{uuid.uuid4().hex[:6]}"}
    config = _config(write, secure_kafka, "scram", topic, transactions=tx)
    result = run_cli("run", str(config), "--quiet", env=secure_kafka.env())
    assert result.code == 0, result.stderr
    assert result.summary("kafka-0")["delivered"] == 40
    committed = read_topic(secure_kafka.plaintext, topic, read_committed=True)
    assert len(committed) == 40


def test_a_test_client_reads_back_over_the_secured_listeners(secure_kafka):
    """The read-back itself over SASL_SSL and mTLS, not only the plaintext listener."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = f"secure-read-{uuid.uuid4().hex[:8]}"
    create_topic(secure_kafka.plaintext, topic, partitions=1)
    for listener in ("scram", "plain", "mtls"):
        producer = Producer(secure_kafka.client(listener))
        producer.produce(topic, listener.encode())
        assert producer.flush(30) == 0
    consumer = Consumer({**secure_kafka.client("mtls"), "group.id": "unused",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        got: list[bytes] = []
        for _ in range(60):
            got += [m.value() for m in consumer.consume(10, timeout=0.5) if m.error() is None]
            if len(got) == 3:
                break
        assert got == [b"scram", b"plain", b"mtls"]
    finally:
        consumer.close()


def test_validate_checks_the_topic_over_a_secured_listener(secure_kafka, write):
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"secure-validate-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": secure_kafka.plaintext})
    made = admin.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "60000"})])
    made[topic].result(timeout=30)
    for listener in ("scram", "plain", "mtls"):
        config = _config(write, secure_kafka, listener, topic, timestamp="scheduled")
        result = run_cli("validate", str(config), env=secure_kafka.env())
        assert result.code == 0, result.stderr
        # the topic's retention was read over the secured listener
        assert f"older than topic {topic}'s retention.ms (0:01:00)" in result.stderr, (
            listener, result.stderr)
        assert "did not answer" not in result.stderr
        assert secure_kafka.password not in result.stderr + result.stdout
