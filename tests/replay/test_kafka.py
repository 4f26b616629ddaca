"""Replay against the real broker: a JSONL recording into a topic (exact count, order,
recorded gaps, speed), a topic range through a load shape into a second topic, and the
range's config errors (a missing topic, a start past the end)."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer

from tests.harness.cli import no_traceback, run_cli
from tests.harness.kafka import read_topic

T0 = datetime(2026, 1, 1, tzinfo=UTC)
START = datetime(2026, 3, 1, tzinfo=UTC)


def recording(path, count: int = 300):
    rng = random.Random(5)
    when, docs = T0, []
    for n in range(count):
        when += timedelta(microseconds=rng.choice([0, 1, 999, 1000, 25_000, 400_000, 1_500_000]))
        docs.append({"timestamp": when.isoformat(), "n": n, "msg": f"line {n} ü"})
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return docs


def replay_config(write, source: dict, topic: str, bootstrap: str, pace: dict,
                  name: str = "c.yaml") -> object:
    doc = {"mode": "backfill", "input": [pace], "event": {"replay": source},
           "output": [{"kafka": {"bootstrap_servers": bootstrap, "topic": topic}}]}
    return write(name, json.dumps(doc))


@pytest.mark.parametrize("speed", [1.0, 2.0])
def test_jsonl_replays_into_kafka_exactly_with_its_gaps(tmp_path, write, kafka_bootstrap,
                                                        kafka_topic, speed):
    docs = recording(tmp_path / "rec.jsonl")
    topic = kafka_topic("replay", partitions=1)
    config = replay_config(write, {"jsonl": {"path": "rec.jsonl"}}, topic, kafka_bootstrap,
                           {"recorded": {"speed": speed, "start": START.isoformat()}})
    result = run_cli("run", config, "--metrics-port", "0")
    no_traceback(result.stderr)
    assert result.code == 0, result.stderr[-2000:]
    got = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, topic)]
    assert result.accounts("kafka-0", held=got)["delivered"] == len(docs)
    assert [g["n"] for g in got] == list(range(len(docs)))  # exact count and order
    assert [g["msg"] for g in got] == [d["msg"] for d in docs]
    old = [datetime.fromisoformat(d["timestamp"]) for d in docs]
    new = [datetime.fromisoformat(g["timestamp"]) for g in got]
    assert new[0] == START
    for k in range(1, len(docs)):
        recorded_gap = (old[k] - old[k - 1]) / speed
        assert abs((new[k] - new[k - 1]) - recorded_gap) <= timedelta(milliseconds=1), k


def produce_source(bootstrap: str, topic: str, count: int) -> list[dict]:
    producer = Producer({"bootstrap.servers": bootstrap})
    docs = [{"timestamp": (T0 + timedelta(seconds=n)).isoformat(), "n": n,
             "trace_id": f"{n + 1:032x}", "span_id": f"{n + 1:016x}"} for n in range(count)]
    for doc in docs:
        producer.produce(topic, json.dumps(doc).encode())
    assert producer.flush(30) == 0
    return docs


def test_a_topic_range_replays_through_a_load_shape(tmp_path, write, kafka_bootstrap,
                                                    kafka_topic):
    source, target = kafka_topic("src", partitions=1), kafka_topic("dst", partitions=1)
    docs = produce_source(kafka_bootstrap, source, 600)
    # offsets [100, 400): 300 records; the ramp 0 -> 60/s over 10 s has exactly 300 ticks
    shape = {"rate": {"stages": [{"duration": "10s", "target": 60}],
                      "start": START.isoformat()}}
    config = replay_config(
        write,
        {"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": source, "start": 100,
                   "end": 400, "read_committed": True},
         "new_ids": True},
        target, kafka_bootstrap, shape)
    result = run_cli("run", config, "--metrics-port", "0", "--seed", "3")
    no_traceback(result.stderr)
    assert result.code == 0, result.stderr[-2000:]
    got = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, target)]
    assert len(got) == 300
    for doc, old in zip(got, docs[100:400], strict=True):
        assert doc["n"] == old["n"]  # the content, in order
        assert doc.keys() == old.keys()
        assert doc["trace_id"] != old["trace_id"] and doc["span_id"] != old["span_id"]
        assert len(doc["trace_id"]) == 32 and len(doc["span_id"]) == 16
    per_second = Counter(int((datetime.fromisoformat(d["timestamp"]) - START).total_seconds())
                         for d in got)
    for second in range(10):  # the ramp's integral over [s, s+1): 6s + 3
        assert abs(per_second[second] - (6 * second + 3)) <= 1, (second, per_second)


def test_a_missing_topic_and_a_range_past_the_end_are_config_errors(write, kafka_bootstrap,
                                                                    kafka_topic):
    source = kafka_topic("src", partitions=1)
    produce_source(kafka_bootstrap, source, 5)
    pace = {"rate": {"per_second": 10, "start": START.isoformat(), "end": "2026-03-01T00:01:00Z"}}
    for topic, start, message, bootstrap in (
        ("no-such-topic-for-replay", "earliest", "does not exist", kafka_bootstrap),
        (source, 50, "offset 50 is past the end of partition 0", kafka_bootstrap),
        (source, "earliest", "Broker transport failure", "127.0.0.1:1"),  # nobody there
    ):
        config = replay_config(
            write, {"kafka": {"bootstrap_servers": bootstrap, "topic": topic,
                              "start": start}},
            kafka_topic("dst"), kafka_bootstrap, pace)
        for command in ("validate", "run") if bootstrap == kafka_bootstrap else ("run",):
            result = run_cli(command, config, *(("--metrics-port", "0") if command == "run"
                                                else ()))
            no_traceback(result.stderr)
            assert result.code == 2, result.stderr
            assert "event.replay.kafka" in result.stderr and message in result.stderr
            assert "rdkafka" not in result.stderr  # the client's own retries stay quiet


def test_a_replay_backfill_resumes_from_its_checkpoint_exactly_once(tmp_path, write,
                                                                   kafka_bootstrap, kafka_topic):
    docs = recording(tmp_path / "rec.jsonl", 300)
    for doc in docs:
        doc["trace_id"] = f"{doc['n'] + 1:032x}"
    (tmp_path / "rec.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    source = {"jsonl": {"path": "rec.jsonl"}, "new_ids": True, "loop": 2}
    pace = {"recorded": {"speed": 4.0, "start": START.isoformat()}}
    whole, cut = kafka_topic("whole", partitions=1), kafka_topic("cut", partitions=1)
    once = replay_config(write, source, whole, kafka_bootstrap, pace, "once.yaml")
    assert run_cli("run", once, "--seed", "9", "--metrics-port", "0").code == 0
    twice = replay_config(write, source, cut, kafka_bootstrap, pace, "twice.yaml")
    checkpoint = tmp_path / "replay.checkpoint"
    args = ("run", twice, "--seed", "9", "--metrics-port", "0", "--checkpoint", checkpoint)
    first = run_cli(*args, "--max-events", "250")
    assert first.code == 0, first.stderr[-2000:]
    second = run_cli(*args)
    no_traceback(second.stderr)
    assert second.code == 0, second.stderr[-2000:]
    assert "resumed after 250 settled" in second.stderr
    want = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, whole)]
    got = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, cut)]
    assert len(want) == 600 and got == want  # the same records, times and fresh ids, once
    assert want[0]["trace_id"] != want[300]["trace_id"]  # the second loop's ids are its own


def test_a_range_given_as_times_and_an_open_transaction_read_committed(
        write, tmp_path, kafka_bootstrap, kafka_topic):
    source = kafka_topic("src", partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for n in range(10):  # record timestamps T0 + n minutes
        stamp = int((T0 + timedelta(minutes=n)).timestamp() * 1000)
        producer.produce(source, json.dumps({"timestamp": n, "n": n}).encode(), timestamp=stamp)
    assert producer.flush(30) == 0
    pace = {"rate": {"per_second": 100, "start": START.isoformat(),
                     "end": "2026-03-01T00:01:00Z"}}
    target = kafka_topic("dst", partitions=1)
    config = replay_config(write, {"kafka": {
        "bootstrap_servers": kafka_bootstrap, "topic": source, "time_field": None,
        "start": (T0 + timedelta(minutes=3)).isoformat(),
        "end": (T0 + timedelta(minutes=7)).isoformat()}}, target, kafka_bootstrap, pace,
        "times.yaml")
    result = run_cli("run", config, "--metrics-port", "0")
    assert result.code == 0, result.stderr[-2000:]
    assert [json.loads(m.value())["n"] for m in read_topic(kafka_bootstrap, target)] == [
        3, 4, 5, 6]  # [start, end) by the records' own timestamps

    # a transaction left open: read_committed stops at the stable end, without waiting
    tx = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{source}-tx"})
    tx.init_transactions(30)
    tx.begin_transaction()
    tx.produce(source, b'{"timestamp": 99, "n": 99}')
    tx.flush(30)
    try:
        target = kafka_topic("dst2", partitions=1)
        config = replay_config(write, {"kafka": {
            "bootstrap_servers": kafka_bootstrap, "topic": source, "time_field": None,
            "read_committed": True, "idle_timeout": 2}}, target, kafka_bootstrap, pace,
            "open.yaml")
        result = run_cli("run", config, "--metrics-port", "0")
        no_traceback(result.stderr)
        assert result.code == 0, result.stderr[-2000:]
        got = [json.loads(m.value())["n"] for m in read_topic(kafka_bootstrap, target)]
        assert got == list(range(10))  # what was committed before it, all of it
    finally:
        tx.abort_transaction(30)
