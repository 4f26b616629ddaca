"""The kafka output's transactions against a real broker: a read_committed consumer sees
whole produce() calls or nothing, an abortable error is retried once, a fenced producer
stops its run, and the accounts stay exact (delivered + failed == produced)."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from connector.outputs.base import Acks, Batch, BuildContext
from connector.outputs.kafka import Config, KafkaOutput
from tests.harness.accounts import check_accounts, dead_letters
from tests.harness.cli import Run, no_traceback, wait_for
from tests.harness.faults import ns_of, write_config, write_script
from tests.harness.kafka import create_topic, read_topic
from tests.harness.summary import Summary

pytestmark = pytest.mark.timeout(180)
K = "kafka-0"


def transactions(summary: Summary, output: str = K) -> tuple[int, int]:
    """(committed, aborted) from the summary's `transactions:` line under the output."""
    found = summary.outputs[output].transactions
    assert found is not None, f"no transactions line for {output}:\n{summary.text}"
    return found


def config_file(path: Path, script: Path, output: dict, **top) -> Path:
    return write_config(path, script, [{"kafka": output}], **top)


# Nine spans a call, one trace each: spans 0-3 of service "front", 4-8 of "back".
TRACE_SCRIPT = """\
import json
n = 0

def produce(params):
    global n
    n += 1
    return [json.dumps({"trace": n, "span": s, "service": "front" if s < 4 else "back"})
            for s in range(9)]
"""


def traces_of(messages) -> Counter:
    return Counter(json.loads(m.value())["trace"] for m in messages)


@pytest.mark.wallclock
def test_a_read_committed_consumer_never_sees_part_of_a_call(kafka_bootstrap, kafka_topic,
                                                             tmp_path):
    """A live run routes each 9-span trace over two topics. While it runs, it is frozen
    (SIGSTOP) with a transaction open: the read_committed view then holds whole traces
    only, while the read_uncommitted view shows the open transaction's spans. At the end
    every trace is there once, whole."""
    front, back = f"{kafka_topic.prefix}front", f"{kafka_topic.prefix}back"
    for topic in (front, back):
        create_topic(kafka_bootstrap, topic, 3)
        kafka_topic.made.add(topic)
    script = tmp_path / "trace.py"
    script.write_text(TRACE_SCRIPT)
    output = {
        "bootstrap_servers": kafka_bootstrap, "topic": kafka_topic.prefix + "{service}",
        "dead_letter": "dead.jsonl", "producer": {"linger.ms": 5},
        "transactions": {"id": f"test-atomic-{uuid.uuid4().hex[:8]}", "commit_every": 0.5},
    }
    config = config_file(tmp_path / "c.yaml", script, output, per_second=300)
    run = Run(tmp_path, config, "--duration", "5")
    hidden = 0
    try:
        run.wait_delivered(900)
        for _ in range(5):  # frozen right after a commit, nothing may be open yet: again
            run.signal(signal.SIGSTOP)
            try:
                time.sleep(0.3)  # what the client had taken reaches the broker
                seen = traces_of(read_topic(kafka_bootstrap, [front, back], read_committed=True))
                partial = {t: n for t, n in seen.items() if n != 9}
                assert not partial, f"partial traces in the read_committed view: {partial}"
                everything = traces_of(read_topic(kafka_bootstrap, [front, back]))
                hidden = sum(everything.values()) - sum(seen.values())
            finally:
                run.signal(signal.SIGCONT)
            if hidden:
                break
            time.sleep(0.2)
        code = run.wait(60)
    finally:
        run.kill()
    no_traceback(run.stderr)
    s = run.summary
    assert hidden > 0, "the open transaction's spans never showed uncommitted"
    assert code == 0, s.text
    assert s.delivered(K) == s.produced == 9 * 300 * 5, s.text
    committed, aborted = transactions(s)
    assert committed >= 3 and aborted == 0, s.text  # 0.5 s each, less the frozen time
    messages = read_topic(kafka_bootstrap, [front, back], read_committed=True)
    spans = [json.loads(m.value()) for m in messages]
    assert len(spans) == s.produced
    assert len({(span["trace"], span["span"]) for span in spans}) == len(spans)  # once each
    assert set(traces_of(messages).values()) == {9}
    assert all(m.topic() == kafka_topic.prefix + json.loads(m.value())["service"]
               for m in messages)


# Three events a call, keyed by `k`. Some calls carry one bad event: no key (cannot be
# routed), a value over message.max.bytes (refused by the client after the call's first
# event was taken), or a lone surrogate (cannot be encoded): the whole call fails.
HOSTILE_SCRIPT = """\
import json
n = 0

def produce(params):
    global n
    n += 1
    events = [{"call": n, "i": i, "k": f"key-{n % 5}"} for i in range(3)]
    if n % 7 == 3:
        del events[2]["k"]
    elif n % 11 == 5:
        events[1]["pad"] = "x" * 200_000
    elif n % 13 == 6:
        events[2]["odd"] = "\\ud800 \\x00 \\u202e"
    elif n % 17 == 8:
        events[0]["k"] = None
    return [json.dumps(e, ensure_ascii=False) for e in events]
"""


def bad_call(n: int) -> bool:
    return n % 7 == 3 or n % 11 == 5 or n % 13 == 6 or n % 17 == 8


def first_bad(n: int) -> int:
    """The index of the event that fails bad call n (in HOSTILE_SCRIPT's order)."""
    return 2 if n % 7 == 3 else 1 if n % 11 == 5 else 2 if n % 13 == 6 else 0


def test_a_bad_event_fails_its_whole_call_and_nothing_of_it_is_committed(
    kafka_bootstrap, kafka_topic, tmp_path
):
    topic = kafka_topic("hostile")
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE_SCRIPT)
    output = {
        "bootstrap_servers": kafka_bootstrap, "topic": topic, "key": "k",
        "dead_letter": "dead.jsonl", "producer": {"message.max.bytes": 100_000},
        "transactions": {"id": f"test-hostile-{uuid.uuid4().hex[:8]}"},
    }
    calls = 2000
    config = config_file(tmp_path / "c.yaml", script, output, per_second=1000, seconds=2)
    run = Run(tmp_path, config)
    code = run.wait(120)
    no_traceback(run.stderr)
    s = run.summary
    dead = dead_letters(tmp_path / "dead.jsonl")
    assert s.produced == 3 * calls, s.text
    check_accounts(s, K, dead=dead)
    bad = {n for n in range(1, calls + 1) if bad_call(n)}
    assert s.failed(K) == 3 * len(bad) and code == 1, s.text
    failed_calls = Counter(json.loads(r["value"])["call"] for r in dead)
    assert failed_calls == dict.fromkeys(bad, 3)  # every event of a bad call, no other
    reasons = s.reasons(K)
    assert reasons["another event of its produce() call failed (transactions)"] == 2 * len(bad)
    assert any(r.startswith("MSG_SIZE_TOO_LARGE") for r in reasons), reasons
    committed = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, [topic], read_committed=True)]
    assert len(committed) == s.delivered(K)
    assert sorted((e["call"], e["i"]) for e in committed) == [
        (n, i) for n in range(1, calls + 1) if n not in bad for i in range(3)
    ]
    # a too-large event refused after its call's first event was taken: that transaction
    # was aborted and its good calls sent again. Whether the taken event had gone out
    # before the abort (and so shows read_uncommitted) is up to timing: either is right.
    # What is never right: any of the call committed, or its events from the bad one on
    # reaching the topic at all.
    _, aborted = transactions(s)
    assert aborted >= 1, s.text
    everything = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, [topic])]
    shown = Counter((e["call"], e["i"]) for e in everything)
    assert not Counter((e["call"], e["i"]) for e in committed) - shown
    assert all(e["i"] < first_bad(e["call"]) for e in everything if e["call"] in bad)
    assert not any(e["call"] % 11 == 5 and e["i"] == 0 for e in committed)


class FailingCommits:
    """The real producer, whose next `failures` commits fail as abortable (as when the
    coordinator aborted the transaction): our abort and retry run against the broker."""

    def __init__(self, producer, failures: int):
        self.producer, self.failures = producer, failures

    def commit_transaction(self, *args):
        if self.failures:
            self.failures -= 1
            self.producer.flush(10)  # the transaction's messages are written, then it fails
            raise KafkaException(KafkaError(
                KafkaError.INVALID_TXN_STATE, "injected", txn_requires_abort=True
            ))
        return self.producer.commit_transaction(*args)

    def __getattr__(self, name):
        return getattr(self.producer, name)

    def __len__(self):
        return len(self.producer)


@pytest.mark.parametrize("failures", [1, 2])
def test_an_abortable_error_sends_the_transaction_again_once(kafka_bootstrap, kafka_topic,
                                                             tmp_path, failures):
    topic = kafka_topic("retry")
    config = Config(bootstrap_servers=kafka_bootstrap, topic=topic,
                    transactions={"id": f"test-retry-{uuid.uuid4().hex[:8]}"})
    acks = Acks(K, "kafka", tmp_path / "dead.jsonl")
    out = KafkaOutput(config, acks)
    out.start()
    try:
        out.producer = FailingCommits(out.producer, failures)
        events = [json.dumps({"n": n}) for n in range(100)]
        for first in range(0, 100, 20):  # five hand-offs of ten 2-event calls
            acks.handed += 20
            out.write_batch(Batch(events[first:first + 20], None, list(range(0, 20, 2))))
        assert acks.pending == 100  # nothing counts before the commit
        out.flush(30)
    finally:
        out.close()
        acks.settle()
    committed = ns_of(m.value() for m in read_topic(kafka_bootstrap, [topic], read_committed=True))
    everything = ns_of(m.value() for m in read_topic(kafka_bootstrap, [topic]))
    dead = dead_letters(tmp_path / "dead.jsonl")
    expected = Counter(committed=1, aborted=1) if failures == 1 else Counter(aborted=2)
    assert acks.transactions == expected
    if failures == 1:  # the retry committed: each event once; the aborted copies hidden
        assert (acks.delivered, acks.failed, dead) == (100, 0, [])
        assert sorted(committed) == list(range(100))
        assert sorted(everything) == sorted(list(range(100)) * 2)
    else:  # failed again: counted failed, dead-lettered, nothing visible
        assert (acks.delivered, acks.failed) == (0, 100)
        assert acks.reasons == Counter({"transaction failed: INVALID_TXN_STATE: "
                                        + KafkaError(KafkaError.INVALID_TXN_STATE).str(): 100})
        assert sorted(json.loads(r["value"])["n"] for r in dead) == list(range(100))
        assert all(r["error"].endswith("injected") for r in dead)
        assert committed == []
        assert acks.transaction_seconds.count == 0


@pytest.mark.wallclock
def test_a_second_connector_with_the_same_id_fences_the_first(kafka_bootstrap, kafka_topic,
                                                              tmp_path):
    topic = kafka_topic("fenced")
    tid = f"test-fence-{uuid.uuid4().hex[:8]}"
    script = write_script(tmp_path / "s.py")
    output = {"bootstrap_servers": kafka_bootstrap, "topic": topic, "dead_letter": "dead.jsonl",
              "transactions": {"id": tid}}
    runs = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        config = config_file(folder / "c.yaml", script, output, per_second=500)
        runs.append(Run(folder, config, "--duration", "30" if name == "first" else "2"))
        if name == "first":
            runs[0].wait_delivered(500)
    first, second = runs
    try:
        code = first.wait(30)
        assert second.wait(60) == 0, second.stderr[-3000:]
    finally:
        first.kill()
        second.kill()
    no_traceback(first.stderr)
    assert code == 1, first.stderr[-3000:]
    assert f"transactional id '{tid}' was fenced" in first.stderr
    s = first.summary
    check_accounts(s, K, dead=dead_letters(tmp_path / "first" / "dead.jsonl"))
    assert s.reasons(K).keys() <= {"transaction fenced (another producer uses its transactional id)"}
    assert s.produced < 500 * 30, s.text  # it stopped
    committed = read_topic(kafka_bootstrap, [topic], read_committed=True)
    assert len(committed) == s.delivered(K) + second.summary.delivered(K)


def test_a_broker_killed_inside_an_open_transaction_loses_and_duplicates_nothing(private_kafka,
                                                                                 tmp_path):
    script = write_script(tmp_path / "s.py", slow_every=500, slow=0.025)
    topic = f"tx-{uuid.uuid4().hex[:8]}"
    output = {"bootstrap_servers": private_kafka.bootstrap, "topic": topic, "dead_letter": "dead.jsonl",
              "transactions": {"id": f"test-restart-{uuid.uuid4().hex[:8]}"}}
    config = config_file(tmp_path / "c.yaml", script, output, per_second=1000, seconds=60)
    run = Run(tmp_path, config)
    try:
        run.wait_delivered(10_000)  # a transaction is always open in a running backfill
        private_kafka.kill()
        private_kafka.start()
        code = run.wait(150)
    finally:
        run.kill()
    no_traceback(run.stderr)
    s = run.summary
    print("\n" + s.text)
    check_accounts(s, K, dead=dead_letters(tmp_path / "dead.jsonl"))
    assert (s.produced, s.delivered(K), s.failed(K), code) == (60_000, 60_000, 0, 0), s.text
    ns = ns_of(m.value() for m in read_topic(private_kafka.bootstrap, [topic], read_committed=True))
    assert sorted(ns) == list(range(1, 60_001))  # each exactly once in the committed view


def test_transactions_config_is_checked(write):
    base = {"bootstrap_servers": "127.0.0.1:1", "topic": "t"}
    with pytest.raises(ValueError, match=r"transactional\.id' is set by transactions\.id"):
        Config(**base, producer={"transactional.id": "x"}, transactions={"id": "a"})
    with pytest.raises(ValueError, match="transactions need encoding raw"):
        Config(**base, encoding="otlp_json", transactions={"id": "a"})
    with pytest.raises(ValueError, match="well below"):
        Config(**base, producer={"transaction.timeout.ms": 1000}, transactions={"id": "a",
                                                                               "commit_every": 1})
    for bad in ({"id": ""}, {"id": "a", "commit_every": 0}, {"id": "a", "commit_every": "x"},
                {"id": "a", "marker_topic": "bad topic"}, {"id": "a", "extra": 1}, {"id": 7}):
        with pytest.raises(ValueError):
            Config(**base, transactions=bad)


def test_the_transactional_id_is_derived_per_replica_and_worker():
    # the identity is read (and checked) once by the CLI: see test_cli's invalid environment
    from connector.identity import Identity
    from connector.outputs.kafka import transactional_id

    config = Config(bootstrap_servers="b:1", topic="t", transactions={"id": "load"})
    assert transactional_id(config) == "load"
    assert transactional_id(config, Identity(0, 1)) == "load"
    assert transactional_id(config, Identity(2, 4)) == "load-r2"
    assert transactional_id(config, Identity(0, 1, 1, 2)) == "load-w1"
    assert transactional_id(config, Identity(0, 3, 3, 4)) == "load-r0-w3"


def test_the_position_commits_with_the_events_and_reads_back_committed(kafka_bootstrap,
                                                                        kafka_topic):
    """A batch's position is written into the transaction of the events it covers; a
    resumed producer with the same id aborts the old open transaction, so its store's load()
    gives the last position whose events were committed, never a later one."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    topic, markers = kafka_topic("events"), kafka_topic("markers", create=False)
    config = Config(bootstrap_servers=kafka_bootstrap, topic=topic,
                    transactions={"id": f"test-marks-{uuid.uuid4().hex[:8]}",
                                  "marker_topic": markers, "commit_every": 20})

    def output() -> KafkaOutput:
        out = KafkaOutput(config, Acks(K, "kafka"), BuildContext(positions=True))
        out.start()
        return out

    def hand(out: KafkaOutput, first: int, position: dict) -> None:
        out.acks.handed += 10
        events = [json.dumps({"n": n}) for n in range(first, first + 10)]
        out.write_batch(Batch(events, None, [0, 5], position))

    old = output()
    try:
        assert old.positions().load() is None
        odd = {"worker": 0, "ticks": 10, "text": "\u202e\x00 \ud7ff \U0001f600", "big": 2**62}
        hand(old, 0, odd)
        assert old.flush(30) == 0  # commits the events and the position
        assert old.positions().load() == odd
        hand(old, 10, {"worker": 0, "ticks": 20})  # open: commit_every is far off
        assert old.acks.pending == 10
        new = output()  # same id: fences the old producer, aborts its open transaction
        try:
            assert new.positions().load() == odd
            hand(new, 10, {"worker": 0, "ticks": 20})
            new.flush(30)
            assert new.positions().load() == {"worker": 0, "ticks": 20}
            assert (new.acks.delivered, new.acks.transactions["committed"]) == (10, 1)
        finally:
            new.close()
    finally:
        old.close()
        old.acks.settle()
    assert (old.acks.delivered, old.acks.failed) == (10, 10)
    assert sorted(ns_of(m.value() for m in read_topic(kafka_bootstrap, [topic], read_committed=True))) == list(
        range(20)
    )
    marks = read_topic(kafka_bootstrap, [markers], read_committed=True)
    assert {m.key() for m in marks} == {old.transactional_id.encode()}
    assert [json.loads(m.value())["position"]["ticks"] for m in marks] == [10, 20]
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, markers)
    found = admin.describe_configs([resource])[resource].result(timeout=30)
    assert found["cleanup.policy"].value == "compact"


def test_workers_each_have_their_own_id_and_the_metrics_agree(kafka_bootstrap, kafka_topic,
                                                              tmp_path):
    """--workers 2: each worker derives its own transactional id (-w0, -w1), so neither
    fences the other; the summary, /metrics and the read_committed view agree exactly."""
    topic = kafka_topic("workers")
    script = write_script(tmp_path / "s.py")
    output = {"bootstrap_servers": kafka_bootstrap, "topic": topic,
              "transactions": {"id": f"test-workers-{uuid.uuid4().hex[:8]}"}}
    config = config_file(tmp_path / "c.yaml", script, output, per_second=1000, seconds=20)
    run = Run(tmp_path, config, "--workers", "2", "--linger", "3")
    try:
        metrics = run.metrics_after_summary(120)
        code = run.wait(60)
    finally:
        run.kill()
    no_traceback(run.stderr)
    s = run.summary
    assert (code, s.produced, s.delivered(K), s.failed(K)) == (0, 20_000, 20_000, 0), s.text
    committed, aborted = transactions(s)
    assert committed >= 2 and aborted == 0, s.text
    label = (("outcome", "committed"), ("output", K))
    assert metrics[("connector_transactions_total", label)] == committed
    assert metrics[("connector_events_delivered_total", (("output", K),))] == 20_000
    assert metrics[("connector_transaction_seconds_count", (("output", K),))] == committed
    ids = [json.loads(m.value())["id"] for m in read_topic(kafka_bootstrap, [topic], read_committed=True)]
    assert len(ids) == len(set(ids)) == 20_000


SLOW_SCRIPT = """\
import json
n = 0

def produce(params):
    global n
    n += 1
    return [json.dumps({"call": n, "i": i}) for i in range(3)]
"""


@pytest.mark.wallclock
def test_an_open_transaction_commits_while_the_run_waits_for_the_clock(kafka_bootstrap,
                                                                      kafka_topic, tmp_path):
    """One call every 5 s: its transaction commits while the run waits (commit_every 0.1),
    not at the next call, which could be past the transaction timeout in a slow cron."""
    topic = kafka_topic("slow")
    script = tmp_path / "slow.py"
    script.write_text(SLOW_SCRIPT)
    output = {"bootstrap_servers": kafka_bootstrap, "topic": topic,
              "transactions": {"id": f"test-slow-{uuid.uuid4().hex[:8]}"}}
    config = config_file(tmp_path / "c.yaml", script, output, per_second=0.2)
    run = Run(tmp_path, config, "--duration", "6")
    try:
        wait_for("the first call", lambda: run.check_alive()
                 and run.metric("connector_events_produced_total") >= 3, 30, 0.05)
        first = time.monotonic()
        wait_for("its events, committed", lambda: len(read_topic(kafka_bootstrap, [topic], read_committed=True)) == 3,
                 3, 0.1)
        assert time.monotonic() - first < 3  # the next call is 5 s after the first
        assert run.metric("connector_events_produced_total") == 3
        code = run.wait(60)
    finally:
        run.kill()
    s = run.summary
    assert (code, s.produced, s.delivered(K)) == (0, 6, 6), s.text
    assert transactions(s) == (2, 0), s.text
