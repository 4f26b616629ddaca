"""The kafka output under hostile events and broker faults, against real brokers.

Brokers that are stopped or killed are this module's own (scripts/local-kafka on other
ports and a temporary state folder), never the shared one. Every test reads back what
arrived and checks that the accounts add up: delivered + failed == handed, every failure
dead-lettered exactly once, and the topic holding exactly what was delivered.
"""

import json
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from connector.outputs import kafka
from connector.outputs.base import NOT_SENT, Acks, Batch
from tests.conftest import run_cli
from tests.kafka_service import OwnBroker
from tests.test_kafka import consume

POSSIBLY_WRITTEN = "timed out (possibly written)"


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory):
    """A broker of this module's own: the tests may kill it (each starts it again first)."""
    broker = OwnBroker(tmp_path_factory.mktemp("broker"))
    broker.start()
    yield broker
    broker.stop()


def output(bootstrap: str, topic: str, dead_letter, **producer) -> kafka.KafkaOutput:
    config = kafka.Config(
        bootstrap_servers=bootstrap, topic=topic, producer=producer, connect_timeout=30,
        flush_timeout=5, dead_letter=dead_letter,
    )
    return kafka.build(config, Acks("kafka-0", "kafka", dead_letter))


def dead_letters(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def check_accounts(acks: Acks, events: list[str], dead: list[dict], topic_values: list[bytes]):
    """delivered + failed == handed; each failure dead-lettered once; the topic holds every
    delivered event once, plus at most the ones that timed out after being sent."""
    assert acks.pending == 0 and acks.delivered + acks.failed == acks.handed == len(events)
    assert len(dead) == acks.failed == sum(acks.reasons.values())
    assert all(d["error"] and d["value"] is not None for d in dead)
    failed = Counter(d["value"] for d in dead)
    assert max(failed.values(), default=1) == 1, "an event was dead-lettered twice"
    delivered = set(events) - set(failed)
    assert len(delivered) == acks.delivered
    got = Counter(v.decode() for v in topic_values)
    assert max(got.values(), default=1) == 1, "duplicates in the topic"
    possibly = {d["value"] for d in dead if d["error"].startswith(POSSIBLY_WRITTEN)}
    assert delivered <= set(got) <= delivered | possibly


# -- hostile events ---------------------------------------------------------------------------


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
    values = [m.value() for m in consume(kafka_bootstrap, [topic], expect=1999)]
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
    values = [json.loads(m.value())["n"] for m in consume(kafka_bootstrap, [f"{prefix}ok"],
                                                          expect=50)]
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


# -- a fresh broker, and outages: the logging rule ---------------------------------------------


def test_a_fresh_broker_gives_no_warning(tmp_path, write):
    """On a broker started a moment ago (its coordinator still loading: librdkafka's GETPID
    `Coordinator load in progress` warnings, printed twice before), the run logs no WARNING:
    the condition clears within 10 s, so it is logged once, at DEBUG."""
    with OwnBroker(tmp_path / "fresh") as broker:
        write("s.py", "n = 0\ndef produce(p):\n    global n\n    n += 1\n    return str(n)\n")
        config = write("c.yaml", f"""
            metrics: {{port: 0}}
            input: [{{rate: {{per_second: 200}}}}]
            event: {{script: {{path: s.py}}}}
            output: [{{kafka: {{bootstrap_servers: {broker.bootstrap}, topic: fresh}}}}]
            """)
        result = run_cli("run", config, "--duration", "5", "--log-level", "debug")
        assert result.code == 0, result.stderr
        lines = result.stderr.splitlines()
        assert [line for line in lines if " WARNING " in line or " ERROR " in line] == []
        client = [line.split(": ", 1)[1] for line in lines if "connector.kafka.client" in line]
        assert max(Counter(client).values(), default=1) == 1, client  # each event once
        summary = result.summary("kafka-0")
        assert summary["delivered"] == summary["produced"] > 0
        values = [int(m.value()) for m in consume(broker.bootstrap, ["fresh"],
                                                  expect=summary["produced"])]
        assert sorted(values) == list(range(1, summary["produced"] + 1))


def test_a_long_outage_warns_once_then_says_recovered(own_broker, write):
    """Down 13 s: one WARNING per condition with its count, then `recovered after N s` at
    INFO; nothing lost, nothing twice."""
    broker = own_broker
    broker.start()
    write("s.py", "n = 0\ndef produce(p):\n    global n\n    n += 1\n    return str(n)\n")
    config = write("c.yaml", f"""
        metrics: {{port: 0}}
        input: [{{rate: {{per_second: 100}}}}]
        event: {{script: {{path: s.py}}}}
        output: [{{kafka: {{bootstrap_servers: {broker.bootstrap}, topic: long-outage}}}}]
        """)
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector", "run", str(config), "--duration", "26"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        broker.kill()
        time.sleep(13)
        broker.start()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    client = [line for line in err.splitlines() if "connector.kafka.client" in line]
    warnings = [line for line in client if " WARNING " in line]
    recovered = [line for line in client if " INFO " in line and "recovered after" in line]
    assert warnings and len(recovered) == len(warnings), client
    assert all("time(s) in" in w for w in warnings)
    messages = [w.split("kafka-0: ", 1)[1].split(" (")[0] for w in warnings]
    assert len(set(messages)) == len(messages), "a condition was warned twice"
    assert "brokers are down" not in err
    produced = int(err.split("events produced: ")[1].split()[0])
    assert f"delivered {produced}, failed 0" in err
    values = [int(m.value()) for m in consume(broker.bootstrap, ["long-outage"], expect=produced)]
    assert sorted(values) == list(range(1, produced + 1))


# -- a dead broker: timeouts, the stop deadline, a second signal ------------------------------


def _fill(out: kafka.KafkaOutput, events: list[str]) -> None:
    out.acks.handed += len(events)
    out.write_batch(Batch(events))


def test_a_message_timeout_is_counted_possibly_written_and_dead_lettered(own_broker, tmp_path):
    broker = own_broker
    broker.start()
    dead_path = tmp_path / "dead.jsonl"
    out = output(broker.bootstrap, "timeouts", dead_path, **{"message.timeout.ms": 3000})
    out.start()
    _fill(out, [f"before-{i}" for i in range(100)])
    assert out.flush(10) == 0
    broker.kill()
    events = [f"after-{i}" for i in range(100)]
    _fill(out, events)
    assert out.flush(10) == 0  # all settled: failed by the timeout
    out.close()
    out.acks.settle()
    assert out.acks.reasons == {POSSIBLY_WRITTEN: 100}
    dead = dead_letters(dead_path)
    broker.start()
    check_accounts(out.acks, [f"before-{i}" for i in range(100)] + events, dead,
                   [m.value() for m in consume(broker.bootstrap, ["timeouts"], expect=200)])


def test_the_stop_deadline_ends_waiting_for_room(own_broker, tmp_path):
    """Broker killed, local queue full: once the stop deadline passes, write_batch fails the
    rest of its batch as not sent and returns (it used to wait for the 300 s timeout)."""
    broker = own_broker
    broker.start()
    dead_path = tmp_path / "dead.jsonl"
    out = output(broker.bootstrap, "stop-deadline", dead_path,
                 **{"queue.buffering.max.messages": 2000})
    out.start()
    sent = [str(i) for i in range(1000)]
    _fill(out, sent)
    assert out.flush(10) == 0
    broker.kill()
    rest = [str(i) for i in range(1000, 11_000)]
    out.stop_within(3)
    started = time.monotonic()
    _fill(out, rest)  # the queue takes 2000, then waits for room until the deadline
    assert time.monotonic() - started < 3 + 2
    left = out.flush(max(0.0, started + 3 - time.monotonic()))
    out.close()
    out.acks.settle()
    assert left > 0 and out.acks.reasons[NOT_SENT] == 10_000 - 2000
    assert "never acknowledged by the output" not in out.acks.reasons
    dead = dead_letters(dead_path)
    broker.start()
    check_accounts(out.acks, sent + rest, dead,
                   [m.value() for m in consume(broker.bootstrap, ["stop-deadline"])])


def test_a_second_signal_fails_exactly_what_the_client_had_not_taken(own_broker, tmp_path):
    """KeyboardInterrupt while waiting for room: the events not taken fail as not sent, the
    taken ones settle through their callbacks at close(); nothing counted twice or lost."""
    broker = own_broker
    broker.start()
    dead_path = tmp_path / "dead.jsonl"
    out = output(broker.bootstrap, "interrupt", dead_path,
                 **{"queue.buffering.max.messages": 2000})
    out.start()
    broker.kill()
    events = [str(i) for i in range(10_000)]

    def interrupt(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            _fill(out, events)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert out.acks.reasons[NOT_SENT] == 10_000 - 2000  # the queue held 2000
    out.close()
    out.acks.settle()
    assert "never acknowledged by the output" not in out.acks.reasons
    dead = dead_letters(dead_path)
    broker.start()
    check_accounts(out.acks, events, dead,
                   [m.value() for m in consume(broker.bootstrap, ["interrupt"], idle=3)])


def test_flush_counts_events_not_messages_for_otlp_encodings(own_broker, tmp_path):
    """otlp_proto packs a trace's 8 spans in one message: flush() says 80 events are left,
    not 10 messages."""
    broker = own_broker
    broker.start()
    config = kafka.Config(bootstrap_servers=broker.bootstrap, topic="otlp-flush",
                          encoding="otlp_proto", dead_letter=tmp_path / "dead.jsonl")
    out = kafka.build(config, Acks("kafka-0", "kafka", tmp_path / "dead.jsonl"))
    out.start()
    broker.kill()
    events = []
    for t in range(10):
        trace = f"{t + 1:032x}"
        for s in range(8):
            events.append(json.dumps({
                "trace_id": trace, "span_id": f"{t * 8 + s + 1:016x}", "service": "svc",
                "operation": "op", "start_time": "2026-01-01T00:00:00Z", "duration_ms": 1}))
    _fill(out, events)
    left = out.flush(0.5)
    assert left == 80, out.acks.reasons
    out.close()
    out.acks.settle()
    assert out.acks.failed == 80 and len(dead_letters(tmp_path / "dead.jsonl")) == 80
    broker.start()


def test_ready_is_cheap_even_with_the_broker_gone(own_broker, tmp_path):
    """The workers' report thread asks every 0.5 s: the answer is kept for 5 s, not a
    metadata request (up to 1 s each with the broker gone) per call."""
    broker = own_broker
    broker.start()
    out = output(broker.bootstrap, "ready", None)
    out.start()
    assert out.ready()
    broker.kill()
    time.sleep(5.5)
    started = time.monotonic()
    answers = [out.ready() for _ in range(20)]
    assert time.monotonic() - started < 2
    assert answers == [False] * 20
    out.close()
    broker.start()
