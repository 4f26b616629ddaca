"""A Kafka source whose broker stops answering mid-replay: what was read is delivered, the
rest of the range fails as one bad record after `idle_timeout`, and the run ends (exit 1)
instead of waiting for ever."""

from __future__ import annotations

import json
import uuid

from confluent_kafka import Producer

from tests.harness.cli import Run, no_traceback, wait_for
from tests.harness.kafka import create_topic


def test_a_broker_that_stops_answering_ends_the_range_as_one_bad_record(private_kafka,
                                                                        tmp_path, write):
    topic = f"replay-pause-{uuid.uuid4().hex[:6]}"
    create_topic(private_kafka.bootstrap, topic, partitions=2)
    producer = Producer({"bootstrap.servers": private_kafka.bootstrap})
    for partition, seconds in ((0, 0), (0, 3), (1, 4), (1, 5)):
        producer.produce(topic, json.dumps({"timestamp": 1_767_225_600 + seconds,
                                            "p": partition}).encode(), partition=partition)
    assert producer.flush(30) == 0
    config = write("c.yaml", json.dumps({
        "input": [{"recorded": {}}],  # live, on the recorded gaps: partition 1 comes at 3 s
        "event": {"replay": {"kafka": {"bootstrap_servers": private_kafka.bootstrap,
                                       "topic": topic, "idle_timeout": 2}}},
        "output": [{"file": {"path": "out.jsonl"}}],
    }))
    run = Run(tmp_path, config, metrics=False)
    out = tmp_path / "out.jsonl"
    try:
        wait_for("the first record", lambda: out.exists() and out.read_text().strip(), 60)
        private_kafka.pause()  # partition 0 is fetched already; partition 1 never comes
        code = run.wait(90)
    finally:
        run.kill()
        private_kafka.resume()
    no_traceback(run.stderr)
    assert code == 1, run.stderr[-2000:]
    assert [json.loads(x)["p"] for x in out.read_text().splitlines()] == [0, 0]
    assert "bad_record: 1" in run.stderr and "nothing read for 2 s" in run.stderr
