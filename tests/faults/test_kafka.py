"""Kafka faults, against a private broker (scripts/local-kafka on ports and a state folder
of its own, never a broker you pointed the tests at): killed (kill -9), restarted, paused
(SIGSTOP) and freshly started under the connector, the connector itself killed, and the
kafka output itself driven into a dead broker (the stop deadline, a second signal, flush
and ready() with the broker gone).

Each test reads back what arrived (the topic's records, the dead letter, the summary) and
checks the invariants: exact accounts (delivered + failed == produced, every failure
dead-lettered exactly once, the topic holding what was delivered, plus at most what timed
out after being sent), nothing lost, nothing duplicated, no traceback, an exit code that
tells the truth. A message timeout is met twice, by two causes: the broker paused past it
under the CLI, and killed under the output in-process (where every failure's reason is
exact).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from connector.outputs import kafka
from connector.outputs.base import NOT_SENT, Acks, Batch
from tests.harness.accounts import check_accounts, dead_letters, summary_of
from tests.harness.cli import Run, no_traceback, run_cli, through_outage
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


def topic_name(name: str) -> str:
    """A topic of the test's own on the private broker (other tests use it too)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def output(bootstrap: str, topic: str, dead_letter, **producer) -> kafka.KafkaOutput:
    config = kafka.Config(
        bootstrap_servers=bootstrap, topic=topic, producer=producer, connect_timeout=30,
        flush_timeout=5, dead_letter=dead_letter,
    )
    return kafka.build(config, Acks("kafka-0", "kafka", dead_letter))


def check_output(acks: Acks, events: list[str], dead: list[dict], held: list) -> None:
    """An in-process output's accounts: every event handed settled; delivered + failed ==
    handed; each failure dead-lettered once, with its value; the topic holds every
    delivered event once, plus at most the ones that timed out after being sent."""
    assert acks.pending == 0 and acks.handed == len(events)
    assert all(d["error"] and d["value"] is not None for d in dead)
    possibly = {d["value"] for d in dead if d["error"].startswith(POSSIBLY_WRITTEN)}
    check_accounts(summary_of(acks, produced=len(events)), acks.name, held=held,
                   id_of=lambda m: m.value().decode(), sent=events, possibly=possibly,
                   dead=dead, dead_id_of=lambda d: d["value"])


# -- the broker killed, paused, restarted under a run -----------------------------------------


def test_broker_killed_during_a_backfill_loses_and_duplicates_nothing(private_kafka, tmp_path):
    # 150,000 events over ~8 s (a short sleep every 500 calls), so the kill lands mid-run
    script = write_script(tmp_path / "s.py", slow_every=500, slow=0.025)
    topic = topic_name("faults")
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


@pytest.mark.wallclock
def test_broker_killed_in_a_live_run_with_a_file_beside_it(private_kafka, tmp_path):
    """Two outputs, one broker killed: the file keeps getting every event, Kafka delivers
    every event exactly once after the restart, and /metrics agrees with the summary."""
    script = write_script(tmp_path / "s.py")
    topic = topic_name("faults")
    outputs = [kafka_out(private_kafka, topic),
               {"file": {"path": "events.jsonl", "dead_letter": "dead-file.jsonl"}}]
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
    # each output its own dead letter: one file for two would interleave (refused)
    dead = dead_letters(tmp_path / "dead.jsonl") + dead_letters(tmp_path / "dead-file.jsonl")
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


@pytest.mark.wallclock
def test_broker_paused_past_the_message_timeout(private_kafka, tmp_path):
    """SIGSTOP longer than message.timeout.ms: what timed out is counted failed as possibly
    written and dead-lettered; the topic holds every delivered event, and beyond them only
    possibly-written ones, each once."""
    script = write_script(tmp_path / "s.py")
    topic = topic_name("faults")
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


@pytest.mark.wallclock
def test_workers_with_the_broker_killed_mid_run(private_kafka, tmp_path):
    script = write_script(tmp_path / "s.py")
    topic = topic_name("faults")
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
    topic = topic_name("faults")
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


# -- a fresh broker, and outages: the logging rule ---------------------------------------------


@pytest.mark.wallclock
def test_a_fresh_broker_gives_no_warning(private_kafka, write):
    """On a broker started a moment ago (its coordinator still loading: librdkafka's GETPID
    `Coordinator load in progress` warnings, printed twice before), the run logs no WARNING:
    the condition clears within 10 s, so it is logged once, at DEBUG."""
    broker = private_kafka
    broker.wipe()
    broker.start()  # formatted and started a moment ago
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
    values = [int(m.value()) for m in read_topic(broker.bootstrap, "fresh")]
    assert sorted(values) == list(range(1, summary["produced"] + 1))


@pytest.mark.wallclock
def test_a_long_outage_warns_once_then_says_recovered(private_kafka, write):
    """Down 13 s: one WARNING per condition with its count, then `recovered after N s` at
    INFO; nothing lost, nothing twice."""
    broker, topic = private_kafka, topic_name("long-outage")
    write("s.py", "n = 0\ndef produce(p):\n    global n\n    n += 1\n    return str(n)\n")
    config = write("c.yaml", f"""
        metrics: {{port: 0}}
        input: [{{rate: {{per_second: 100}}}}]
        event: {{script: {{path: s.py}}}}
        output: [{{kafka: {{bootstrap_servers: {broker.bootstrap}, topic: {topic}}}}}]
        """)
    ran = through_outage(config, 26, broker.kill, broker.start, outage=13)
    err = ran.stderr
    assert ran.code == 0, err
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
    values = [int(m.value()) for m in read_topic(broker.bootstrap, topic)]
    assert sorted(values) == list(range(1, produced + 1))


# -- a dead broker: timeouts, the stop deadline, a second signal ------------------------------


def _fill(out: kafka.KafkaOutput, events: list[str]) -> None:
    out.acks.handed += len(events)
    out.write_batch(Batch(events))


def test_a_message_timeout_is_counted_possibly_written_and_dead_lettered(private_kafka, tmp_path):
    broker, topic = private_kafka, topic_name("timeouts")
    dead_path = tmp_path / "dead.jsonl"
    out = output(broker.bootstrap, topic, dead_path, **{"message.timeout.ms": 3000})
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
    check_output(out.acks, [f"before-{i}" for i in range(100)] + events, dead,
                 read_topic(broker.bootstrap, topic))


def test_the_stop_deadline_ends_waiting_for_room(private_kafka, tmp_path):
    """Broker killed, local queue full: once the stop deadline passes, write_batch fails the
    rest of its batch as not sent and returns (it used to wait for the 300 s timeout)."""
    broker, topic = private_kafka, topic_name("stop-deadline")
    dead_path = tmp_path / "dead.jsonl"
    out = output(broker.bootstrap, topic, dead_path,
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
    check_output(out.acks, sent + rest, dead, read_topic(broker.bootstrap, topic))


def test_a_second_signal_fails_exactly_what_the_client_had_not_taken(private_kafka, tmp_path):
    """KeyboardInterrupt while waiting for room: the events not taken fail as not sent, the
    taken ones settle through their callbacks at close(); nothing counted twice or lost."""
    broker, topic = private_kafka, topic_name("interrupt")
    dead_path = tmp_path / "dead.jsonl"
    out = output(broker.bootstrap, topic, dead_path,
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
    check_output(out.acks, events, dead, read_topic(broker.bootstrap, topic))


def test_flush_counts_events_not_messages_for_otlp_encodings(private_kafka, tmp_path):
    """otlp_proto packs a trace's 8 spans in one message: flush() says 80 events are left,
    not 10 messages."""
    broker = private_kafka
    config = kafka.Config(bootstrap_servers=broker.bootstrap, topic=topic_name("otlp-flush"),
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


@pytest.mark.wallclock
def test_ready_is_cheap_even_with_the_broker_gone(private_kafka, tmp_path):
    """The workers' report thread asks every 0.5 s: the answer is kept for 5 s, not a
    metadata request (up to 1 s each with the broker gone) per call."""
    broker = private_kafka
    out = output(broker.bootstrap, topic_name("ready"), None)
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


def _usage(pid: int) -> tuple[float, int] | None:
    """(CPU seconds of its main thread, where the pipeline and the transaction retries run;
    resident bytes of the process), from /proc; None once it is gone. librdkafka's own
    threads are left out: a broker thread facing a stalled broker may busy itself with
    its socket (librdkafka's, not the connector's doing)."""
    try:
        stat = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(stat[11]) + int(stat[12])) / ticks, rss * os.sysconf("SC_PAGE_SIZE")


def _watch(run: Run, timeout: float) -> tuple[float, int, float]:
    """Until the run exits (within `timeout`): the main thread's CPU seconds last seen, the peak
    resident bytes, and when it was last seen alive."""
    cpu, peak, seen = 0.0, 0, time.monotonic()
    end = time.monotonic() + timeout
    while run.proc.poll() is None and time.monotonic() < end:
        usage = _usage(run.pid)
        if usage is not None:
            cpu, peak, seen = usage[0], max(peak, usage[1]), time.monotonic()
        time.sleep(0.1)
    run.wait(max(1.0, end - time.monotonic()))
    return cpu, peak, seen


def _transactional_run(private_kafka, tmp_path, name: str, tx_timeout_ms: int, **extra) -> Run:
    script = write_script(tmp_path / "s.py")
    out = kafka_out(private_kafka, topic_name(name),
                    transactions={"id": f"{name}-{uuid.uuid4().hex[:8]}", "commit_every": 0.2},
                    producer={"transaction.timeout.ms": tx_timeout_ms}, **extra)
    config = write_config(tmp_path / "c.yaml", script, [out], 200)
    run = Run(tmp_path, config, "--duration", "300")
    run.wait_delivered(400)
    return run


@pytest.mark.wallclock
def test_transactions_with_the_broker_stalled_past_the_transaction_timeout(private_kafka,
                                                                           tmp_path):
    """SIGSTOP past transaction.timeout.ms (8 s): the commit times out, the abort is
    refused while the commit is still under way in the client (_CONFLICT, retriable), and
    is asked again after a backoff, not in a busy loop: CPU and memory stay bounded, and
    the run stops with exit 1 naming the cause within the transaction timeout plus a
    margin (the README's word)."""
    run = _transactional_run(private_kafka, tmp_path, "txstall", 8000)
    try:
        before = _usage(run.pid)
        assert before is not None
        private_kafka.pause()
        paused = time.monotonic()
        cpu, peak, seen = _watch(run, 8 + 30)
    finally:
        private_kafka.resume()
        run.kill()
    took = run.ended - paused
    no_traceback(run.stderr)
    s = run.summary
    print(f"\nexited {took:.1f}s after the stall; {cpu - before[0]:.1f} CPU s over "
          f"{seen - paused:.1f} s; peak {peak >> 20} MiB\n{s.text}")
    assert run.proc.returncode == 1, s.text
    assert "could neither commit nor abort within 8s (transaction.timeout.ms" in run.stderr
    assert took <= 8 + 20, f"exited {took:.1f}s after the stall (transaction timeout 8 s)"
    assert cpu - before[0] <= 0.1 * (seen - paused) + 1, "the retries spun while the broker stalled"
    assert peak - before[1] < 200 << 20, f"memory grew {(peak - before[1]) >> 20} MiB"
    check_accounts(s, K, dead=dead_letters(tmp_path / "dead.jsonl"))


@pytest.mark.wallclock
def test_sigterm_bounds_a_commit_under_way_with_the_broker_stalled(private_kafka, tmp_path):
    """SIGTERM while a commit waits on a stalled broker (transaction timeout 60 s): the
    run ends within flush_timeout (4 s) plus a margin, CPU bounded, accounts exact; the
    open transaction's events fail as possibly committed."""
    run = _transactional_run(private_kafka, tmp_path, "txterm", 60000, flush_timeout=4)
    try:
        before = _usage(run.pid)
        assert before is not None
        private_kafka.pause()
        time.sleep(3)  # a commit is under way (commit_every 0.2 s), waiting on the broker
        signalled = time.monotonic()
        run.signal(signal.SIGTERM)
        cpu, _peak, seen = _watch(run, 4 + 30)
    finally:
        private_kafka.resume()
        run.kill()
    took = run.ended - signalled
    no_traceback(run.stderr)
    s = run.summary
    print(f"\nexited {took:.1f}s after SIGTERM (flush_timeout 4)\n{s.text}")
    assert took <= 4 + 10, f"exited {took:.1f}s after SIGTERM (flush_timeout 4)\n{s.text}"
    assert cpu - before[0] <= 0.1 * (seen - signalled + 3) + 1, "the retries spun at the stall"
    assert run.proc.returncode == 1, s.text
    assert s.reasons(K).get("transaction unfinished at shutdown (possibly committed)", 0) > 0, s.text
    check_accounts(s, K, dead=dead_letters(tmp_path / "dead.jsonl"))
