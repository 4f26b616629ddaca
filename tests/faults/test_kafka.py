"""Fault injection into Kafka: a private broker killed (kill -9), restarted and paused
(SIGSTOP) under the connector, and the connector itself killed. Each test reads back what
arrived (the topic's records, the dead letter, the summary) and checks the invariants:
exact accounts, nothing lost, nothing duplicated, no traceback, an exit code that tells
the truth."""

from __future__ import annotations

import json
import re
import signal
import time
import uuid

import pytest

from tests.harness.accounts import check_accounts, dead_letters
from tests.harness.cli import Run, no_traceback
from tests.harness.faults import (
    POSSIBLY_WRITTEN,
    by_reason,
    field_of,
    ids_of,
    ns_of,
    write_config,
    write_script,
)
from tests.harness.kafka import PrivateKafka, read_topic

pytestmark = pytest.mark.timeout(150)

K = "kafka-0"
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def kafka_out(kafka: PrivateKafka, topic: str, **extra) -> dict:
    return {"kafka": {"bootstrap_servers": kafka.bootstrap, "topic": topic,
                      "dead_letter": "dead.jsonl", **extra}}


def topic_name() -> str:
    return f"faults-{uuid.uuid4().hex[:8]}"


def test_broker_killed_during_a_backfill_loses_and_duplicates_nothing(private_kafka, tmp_path):
    # 150,000 events over ~8 s (a short sleep every 500 calls), so the kill lands mid-run
    script = write_script(tmp_path / "s.py", slow_every=500, slow=0.025)
    topic = topic_name()
    config = write_config(tmp_path / "c.yaml", script, [kafka_out(private_kafka, topic)], 1000, 150)
    run = Run(tmp_path, config)
    run.wait_delivered(20_000)
    private_kafka.kill()
    private_kafka.start()  # ~10 s after an unclean kill; the run backs up meanwhile
    code = run.wait(120)

    no_traceback(run.stderr)
    s = run.summary
    print("\n" + s.text)
    assert s.produced == 150_000, s.text
    check_accounts(s, K, dead=dead_letters(tmp_path / "dead.jsonl"))
    assert (s.delivered(K), s.failed(K), code) == (150_000, 0, 0), s.text
    ns = ns_of(read_topic(private_kafka.bootstrap, topic))
    assert len(ns) == len(set(ns)) == 150_000  # the idempotent producer: no duplicates
    assert set(ns) == set(range(1, 150_001))


def test_broker_killed_in_a_live_run_with_a_file_beside_it(private_kafka, tmp_path):
    """Two outputs, one broker killed: the file keeps getting every event, Kafka delivers
    every event exactly once after the restart, and /metrics agrees with the summary."""
    script = write_script(tmp_path / "s.py")
    topic = topic_name()
    outputs = [kafka_out(private_kafka, topic),
               {"file": {"path": "events.jsonl", "dead_letter": "dead.jsonl"}}]
    config = write_config(tmp_path / "c.yaml", script, outputs, 2000)
    run = Run(tmp_path, config, "--duration", "16", "--linger", "3")
    run.wait_delivered(4000)
    private_kafka.kill()
    killed = time.monotonic()
    private_kafka.start()
    back = time.monotonic() - killed
    metrics = run.metrics_after_summary(120)
    code = run.wait(30)

    no_traceback(run.stderr)
    s = run.summary
    print("\n" + s.text)
    dead = dead_letters(tmp_path / "dead.jsonl")
    assert s.produced == 2000 * 16, s.text  # --duration counts from ready: exact
    for output in (K, "file-1"):
        check_accounts(s, output, dead=dead)
        assert (s.delivered(output), s.failed(output)) == (s.produced, 0), s.text
        delivered = metrics[("connector_events_delivered_total", (("output", output),))]
        assert delivered == s.delivered(output)
    assert code == 0, s.text
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == s.produced
    assert sorted(ns_of(lines)) == list(range(1, s.produced + 1))
    ns = ns_of(read_topic(private_kafka.bootstrap, topic))
    assert len(ns) == len(set(ns)) == s.produced, f"broker down {back:.1f}s"
    assert set(ns) == set(range(1, s.produced + 1))


def test_broker_paused_past_the_message_timeout(private_kafka, tmp_path):
    """SIGSTOP longer than message.timeout.ms: what timed out is counted failed as possibly
    written and dead-lettered; the topic holds every delivered event, and beyond them only
    possibly-written ones, each once."""
    script = write_script(tmp_path / "s.py")
    topic = topic_name()
    out = kafka_out(private_kafka, topic, producer={"message.timeout.ms": 3000})
    config = write_config(tmp_path / "c.yaml", script, [out], 1000)
    run = Run(tmp_path, config, "--duration", "16")
    run.wait_delivered(2000)
    private_kafka.pause()
    try:
        time.sleep(7)
    finally:
        private_kafka.resume()
    code = run.wait(90)

    no_traceback(run.stderr)
    s = run.summary
    print("\n" + s.text)
    dead = dead_letters(tmp_path / "dead.jsonl")
    check_accounts(s, K, dead=dead)
    assert s.failed(K) > 0, f"a 7 s pause against a 3 s message timeout failed nothing\n{s.text}"
    assert code == 1, s.text
    dead_ns = field_of(dead)
    assert None not in dead_ns, "dead-letter records without their event"
    assert len(dead_ns) == len(set(dead_ns)), "an event dead-lettered twice"
    possibly = set(field_of(by_reason(dead, POSSIBLY_WRITTEN)))
    assert possibly, s.text
    produced = set(range(1, s.produced + 1))
    delivered = produced - set(dead_ns)
    assert len(delivered) == s.delivered(K)
    ns = ns_of(read_topic(private_kafka.bootstrap, topic))
    assert len(ns) == len(set(ns)), "duplicates in the topic"
    assert delivered <= set(ns), f"{len(delivered - set(ns))} delivered events not in the topic"
    assert set(ns) - delivered <= possibly, "events in the topic that were neither delivered "\
        "nor possibly written"


def test_workers_with_the_broker_killed_mid_run(private_kafka, tmp_path):
    script = write_script(tmp_path / "s.py")
    topic = topic_name()
    config = write_config(tmp_path / "c.yaml", script, [kafka_out(private_kafka, topic)], 2000)
    run = Run(tmp_path, config, "--workers", "2", "--duration", "16")
    run.wait_delivered(4000)
    private_kafka.kill()
    private_kafka.start()
    code = run.wait(120)

    no_traceback(run.stderr)
    s = run.summary
    print("\n" + s.text)
    check_accounts(s, K, dead=dead_letters(tmp_path / "dead.jsonl"))
    assert s.produced == 2000 * 16, s.text  # the workers' shares add up exactly
    assert (s.delivered(K), s.failed(K), code) == (s.produced, 0, 0), s.text
    ids = ids_of(read_topic(private_kafka.bootstrap, topic))  # timestamps: unique across workers
    assert len(ids) == len(set(ids)) == s.produced
    # the workers log like the parent through the outage: time and level, rate-limited
    logs = run.stderr[: run.stderr.rfind("summary: ")].splitlines()
    raw = [line for line in logs if not LOG_LINE.match(line)]
    assert not raw, f"{len(raw)} log line(s) without time and level, e.g. {raw[:3]}"
    assert len(logs) < 100, f"{len(logs)} log lines for a ~15 s outage: not rate-limited"


# The local queue's bound (the private_kafka output's default queue.buffering.max.messages), and the
# events the pipeline may hold in hand before it hands a batch over.
QUEUE_BOUND, BATCH = 100_000, 1000


def test_sigkill_of_the_connector_loses_at_most_the_local_queue(private_kafka, tmp_path):
    """For the record: kill -9 of the connector mid-backfill loses what was still in its
    memory, the local queue and the batch in hand, never more; nothing is duplicated."""
    counter = tmp_path / "produced.count"
    script = write_script(tmp_path / "s.py", counter=counter)
    topic = topic_name()
    config = write_config(tmp_path / "c.yaml", script, [kafka_out(private_kafka, topic)], 1000, 3000)
    run = Run(tmp_path, config)
    run.wait_delivered(100_000)
    run.signal(signal.SIGKILL)
    run.wait(10)
    produced = int(counter.read_text())
    ns = ns_of(read_topic(private_kafka.bootstrap, topic))
    lost = produced - len(ns)
    print(f"\nSIGKILL mid-backfill: {produced} produced, {len(ns)} in the topic, {lost} lost "
          f"(bound {QUEUE_BOUND} queued + {BATCH} in hand)")
    (tmp_path.parent / "sigkill-loss.json").write_text(json.dumps(
        {"produced": produced, "in_topic": len(ns), "lost": lost}))
    assert len(ns) == len(set(ns)), "duplicates in the topic"
    assert set(ns) <= set(range(1, produced + 1))
    assert 0 <= lost <= QUEUE_BOUND + BATCH
