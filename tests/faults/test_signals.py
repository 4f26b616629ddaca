"""Signals to the connector under load, against a private broker: a healthy one, and a
dead one (kill -9) with a short flush_timeout. From the first SIGTERM, waiting for room and
the final flush together end within flush_timeout; what was not sent fails as `not sent:
stopping` and is dead-lettered once; a second SIGTERM ends the waiting at once; the summary
is always printed and no batch is ever handed over twice."""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from tests.harness.accounts import check_accounts, dead_letters
from tests.harness.cli import Run, no_traceback, wait_for
from tests.harness.faults import (
    NOT_SENT,
    POSSIBLY_WRITTEN,
    PURGED,
    by_reason,
    field_of,
    ns_of,
    write_config,
    write_script,
)
from tests.harness.kafka import PrivateKafka, read_topic
from tests.harness.summary import Summary

pytestmark = [pytest.mark.timeout(120), pytest.mark.wallclock]  # flush_timeout is real time

K = "kafka-0"
MARGIN = 10.0  # seconds past flush_timeout a stopping run may take (process exit included)
AT_ONCE = 5.0  # seconds after a second SIGTERM by which the process has exited


def backfill(tmp_path, kafka: PrivateKafka, topic: str, **extra) -> Run:
    """3,000,000 events as fast as they go: the run is under full load when signalled."""
    script = write_script(tmp_path / "s.py")
    out = {"kafka": {"bootstrap_servers": kafka.bootstrap, "topic": topic,
                     "dead_letter": "dead.jsonl", **extra}}
    return Run(tmp_path, write_config(tmp_path / "c.yaml", script, [out], 1000, 3000))


def wait_for_full_queue(run: Run) -> None:
    """The broker is dead and the local queue (100,000 messages by default) is full: the
    pipeline is waiting for room."""
    wait_for("a full local queue", lambda: run.check_alive() and run.metric(
        "connector_output_pending_events") >= 100_000, 60, 0.2)
    time.sleep(0.5)


def check_stopped_run(run: Run, kafka: PrivateKafka, topic: str, tmp_path) -> Summary:
    """The invariants of a signalled run, read back from the summary, the dead letter and
    (after a restart of a dead broker) the topic."""
    no_traceback(run.stderr)
    s = run.summary
    print("\n" + s.text)
    assert "SIGTERM received" in s.stop, s.text
    dead = dead_letters(tmp_path / "dead.jsonl")
    check_accounts(s, K, dead=dead)
    assert run.proc.returncode == (0 if s.failed(K) == 0 else 1), s.text
    dead_ns = field_of(dead)
    assert None not in dead_ns, "dead-letter records without their event (values lost)"
    assert len(dead_ns) == len(set(dead_ns)), (
        f"{len(dead_ns) - len(set(dead_ns))} event(s) dead-lettered twice\n{s.text}"
    )
    assert set(dead_ns) <= set(range(1, s.produced + 1))
    kafka.ensure_running()
    ns = ns_of(read_topic(kafka.bootstrap, topic))
    assert len(ns) == len(set(ns)), f"{len(ns) - len(set(ns))} duplicates: a batch handed twice"
    delivered = set(range(1, s.produced + 1)) - set(dead_ns)
    assert len(delivered) == s.delivered(K)
    assert delivered <= set(ns), f"{len(delivered - set(ns))} delivered events not in the topic"
    # beyond the delivered events, the topic may hold only events that were in flight when
    # they failed (possibly written before the broker died), never one reported not sent
    in_flight = set(field_of(by_reason(dead, POSSIBLY_WRITTEN) + by_reason(dead, PURGED)))
    assert set(ns) - delivered <= in_flight
    return s


def second_sigterm(run: Run, kafka: PrivateKafka, topic: str, tmp_path) -> Summary:
    """The second SIGTERM: the run exits within AT_ONCE, failed what it held, and its
    accounts add up (the first SIGTERM was sent by the test)."""
    second = time.monotonic()
    run.signal(signal.SIGTERM)
    run.wait(AT_ONCE + 10)
    took = run.ended - second
    s = check_stopped_run(run, kafka, topic, tmp_path)
    assert took <= AT_ONCE, f"exited {took:.1f}s after the second SIGTERM\n{s.text}"
    assert s.failed(K) > 0 and run.proc.returncode == 1, s.text
    return s


def test_sigterm_under_full_load_with_a_healthy_broker(private_kafka, tmp_path):
    topic = f"sig-{uuid.uuid4().hex[:8]}"
    run = backfill(tmp_path, private_kafka, topic)
    run.wait_delivered(200_000)
    run.signal(signal.SIGTERM)
    run.wait(60)
    s = check_stopped_run(run, private_kafka, topic, tmp_path)
    assert s.produced < 3_000_000, "the run ended before the signal: no load to stop"
    assert s.failed(K) == 0 and run.proc.returncode == 0, s.text
    assert len(read_topic(private_kafka.bootstrap, topic)) == s.delivered(K) == s.produced


def test_sigterm_with_a_dead_broker_ends_within_flush_timeout(private_kafka, tmp_path):
    topic = f"sig-{uuid.uuid4().hex[:8]}"
    run = backfill(tmp_path, private_kafka, topic, flush_timeout=5)
    run.wait_delivered(200_000)
    private_kafka.kill()
    wait_for_full_queue(run)
    signalled = time.monotonic()
    run.signal(signal.SIGTERM)
    run.wait(5 + MARGIN + 10)  # fail fast, not after librdkafka's 300 s message timeout
    took = run.ended - signalled
    print(f"\nexited {took:.1f}s after SIGTERM (flush_timeout 5)")
    s = check_stopped_run(run, private_kafka, topic, tmp_path)
    assert took <= 5 + MARGIN, f"exited {took:.1f}s after SIGTERM (flush_timeout 5)\n{s.text}"
    assert s.failed(K) > 0 and run.proc.returncode == 1, s.text
    assert s.reasons(K)[NOT_SENT] > 0, f"no event failed as '{NOT_SENT}'\n{s.text}"


def test_second_sigterm_while_waiting_for_room_ends_at_once(private_kafka, tmp_path):
    topic = f"sig-{uuid.uuid4().hex[:8]}"
    run = backfill(tmp_path, private_kafka, topic, flush_timeout=60)
    run.wait_delivered(200_000)
    private_kafka.kill()
    wait_for_full_queue(run)
    run.signal(signal.SIGTERM)
    time.sleep(1)
    s = second_sigterm(run, private_kafka, topic, tmp_path)
    assert s.reasons(K)[NOT_SENT] > 0, s.text


def test_second_sigterm_during_the_flush_ends_at_once(private_kafka, tmp_path):
    """A live run (the queue never fills) with the broker dead: the first SIGTERM starts a
    60 s flush, the second ends it."""
    topic = f"sig-{uuid.uuid4().hex[:8]}"
    script = write_script(tmp_path / "s.py")
    out = {"kafka": {"bootstrap_servers": private_kafka.bootstrap, "topic": topic,
                     "dead_letter": "dead.jsonl", "flush_timeout": 60}}
    run = Run(tmp_path, write_config(tmp_path / "c.yaml", script, [out], 2000))
    run.wait_delivered(4000)
    private_kafka.kill()
    time.sleep(2)
    run.signal(signal.SIGTERM)
    time.sleep(2)  # flushing now, waiting for a broker that is gone
    assert run.proc.poll() is None, "exited before the second signal: no flush to interrupt"
    second_sigterm(run, private_kafka, topic, tmp_path)
