"""`run --checkpoint`: a backfill killed (kill -9) at random moments resumes where its
acknowledged (or, with transactions, committed) position says, against the real broker.
Without transactions nothing is missing and the duplicates stay within the README's bound;
with them a read_committed consumer sees every event exactly once, with the content an
uninterrupted --seed run gives. Plus the refusals: a checkpoint of another run (naming what
changed), a finished one, --workers changed, live mode, and files that are not checkpoints."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import re
import signal
import time
import types
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from connector.testing import free_port
from tests.harness.cli import Run, no_traceback, run_cli, wait_for
from tests.harness.faults import ids_of
from tests.harness.kafka import read_topic

pytestmark = pytest.mark.timeout(240)

START = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
RATE = 1000  # timestamps per second of schedule time: timestamp k is START + k ms
SLEEP = 0.0001  # per call: at most 10,000 calls a second, so the duplicate bound is known
EVERY = 0.5  # --checkpoint-every
BATCH = 1000  # the pipeline's batch: a checkpoint is taken at a hand-off

# One event per call: its id is the scheduled time (unique in the schedule), `r` draws from
# the --seed random stream, so a resume that skipped or repeated a draw shows in the content.
SCRIPT = f"""\
import json, random, time

def produce(params):
    time.sleep({SLEEP})
    return json.dumps({{"id": params["timestamp"].isoformat(), "r": random.random()}})
"""


def config(tmp_path: Path, outputs: list[dict], calls: int) -> Path:
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    end = START + timedelta(milliseconds=calls)
    rate = {"per_second": RATE, "start": START.isoformat(), "end": end.isoformat()}
    data = {"mode": "backfill", "input": [{"rate": rate}],
            "event": {"script": {"path": str(script)}}, "output": outputs}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def expected_events(script: Path, seed: int, calls: int, workers: int = 1) -> dict[str, float]:
    """What an uninterrupted run with --seed sends: id -> r, computed here by the script.
    Worker w loads its own copy seeded seed + w and takes every workers-th timestamp."""
    events = {}
    for w in range(workers):
        random.seed(seed + w)
        spec = importlib.util.spec_from_file_location(f"expected_{seed}_{w}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        # the same draws, without the pacing (its own `time`: never patch the real module)
        module.time = types.SimpleNamespace(sleep=lambda _s: None)
        for k in range(w, calls, workers):
            event = json.loads(module.produce({"timestamp": START + timedelta(milliseconds=k)}))
            events[event["id"]] = event["r"]
    return events


def positions(path: Path) -> dict[str, int]:
    data = json.loads(path.read_text())
    return {w: p["ticks"] for w, p in data["positions"].items()}


def run(tmp_path: Path, cfg: Path, checkpoint: Path, *extra: str) -> Run:
    return Run(tmp_path, cfg, "--checkpoint", str(checkpoint), "--checkpoint-every", str(EVERY),
               "--seed", "7", "--quiet", *extra, preexec_fn=os.setsid)


def kill_at_random(tmp_path: Path, cfg: Path, checkpoint: Path, rng: random.Random,
                   calls: int, *extra: str) -> None:
    """Start (or resume) the backfill and kill -9 it (and its workers: a whole pod goes) at
    a random point of what it has left, read from its own progress (/metrics), not from the
    clock: on any machine the kill lands mid-run. Should the run still finish first, it must
    have finished cleanly, and finish() then expects the resume to be refused."""
    left = calls - sum(positions(checkpoint).values()) if checkpoint.exists() else calls
    target = rng.randint(1, max(1, left // 2))
    r = run(tmp_path, cfg, checkpoint, *extra)
    try:
        wait_for(f"{target} events delivered", lambda: r.proc.poll() is not None or r.metric(
            "connector_events_delivered_total") >= target, 60, 0.02)
        if r.proc.poll() is not None:
            assert r.proc.returncode == 0, r.stderr[-2000:]
            assert json.loads(checkpoint.read_text())["complete"] is True, r.stderr[-2000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(r.proc.pid, signal.SIGKILL)
        r.proc.wait(10)


def finish(tmp_path: Path, cfg: Path, checkpoint: Path, *extra: str) -> str | None:
    """Resume to the end: exit 0, the schedule complete, and so the checkpoint; the resumed
    run's stderr. When the last kill came after the run had finished (its checkpoint says
    complete), the resume is rightly refused (exit 2): None."""
    finished = json.loads(checkpoint.read_text())["complete"]
    r = run(tmp_path, cfg, checkpoint, *extra)
    code = r.wait(120)
    no_traceback(r.stderr)
    if finished:
        assert code == 2, r.stderr[-3000:]
        assert "belongs to a backfill that has finished" in r.stderr, r.stderr[-3000:]
        return None
    assert code == 0, r.stderr[-3000:]
    assert "summary: schedule complete" in r.stderr, r.stderr[-3000:]
    assert json.loads(checkpoint.read_text())["complete"] is True
    return r.stderr


CALLS = 30_000  # several seconds of sending at the paced rate: room for three random kills


def test_kill_and_resume_without_transactions_is_at_least_once(kafka_topic, kafka_bootstrap,
                                                                 tmp_path):
    topic = kafka_topic("ck", partitions=3)
    cfg = config(tmp_path, [{"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic}}],
                 CALLS)
    checkpoint = tmp_path / "ck.json"
    rng = random.Random()
    order = {START + timedelta(milliseconds=k): k for k in range(CALLS)}
    resent = []  # per kill: events in the topic past the position the resume starts from
    for _ in range(3):
        kill_at_random(tmp_path, cfg, checkpoint, rng, CALLS)
        at = positions(checkpoint).get("0", 0)
        arrived = [order[datetime.fromisoformat(i)] for i in ids_of(read_topic(kafka_bootstrap,
                                                                            topic))]
        resent.append(sum(1 for k in arrived if k >= at))
    stderr = finish(tmp_path, cfg, checkpoint)
    assert stderr is None or "replayed: " in stderr, stderr[-2000:]  # None: it had finished
    got = ids_of(read_topic(kafka_bootstrap, topic))
    expected = expected_events(tmp_path / "s.py", 7, CALLS)
    assert set(got) == set(expected), f"{len(set(expected) - set(got))} event(s) missing"
    # what the README bounds: per crash, what was acknowledged after the last checkpoint,
    # at most one --checkpoint-every interval of sending plus one batch
    bound = int(EVERY / SLEEP) + BATCH
    print(f"\nresent after each kill: {resent} (bound {bound}); "
          f"{len(got) - len(set(got))} duplicate(s) in {len(got)} records")
    assert all(n <= bound for n in resent), (resent, bound)
    assert len(got) - len(set(got)) <= sum(resent)


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_and_resume_with_transactions_is_exactly_once(kafka_topic, kafka_bootstrap,
                                                             tmp_path, workers):
    topic = kafka_topic("tx", partitions=3)
    markers = kafka_topic("markers", create=False)
    tx = {"id": f"{topic}-id", "commit_every": 0.1, "marker_topic": markers}
    calls = CALLS
    cfg = config(tmp_path, [{"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic,
                                       "transactions": tx}}], calls)
    checkpoint, extra = tmp_path / "ck.json", ("--workers", str(workers))
    rng = random.Random()
    for _ in range(3):
        kill_at_random(tmp_path, cfg, checkpoint, rng, calls, *extra)
        print(f"\nkilled at committed positions {positions(checkpoint)} (the file's cache)")
    stderr = finish(tmp_path, cfg, checkpoint, *extra)
    assert stderr is None or "transactions: committed " in stderr, stderr[-2000:]
    events = [json.loads(m.value())
              for m in read_topic(kafka_bootstrap, topic, read_committed=True)]
    got = [e["id"] for e in events]
    assert len(got) == len(set(got)), f"{len(got) - len(set(got))} duplicate(s)"
    assert len(got) == calls, f"{len(got)} committed events, the schedule has {calls}"
    expected = expected_events(tmp_path / "s.py", 7, calls, workers)
    assert {e["id"]: e["r"] for e in events} == expected, "content differs from a --seed run"


# -- the same content as an uninterrupted run, and the refusals (file output: no broker) ----


def file_config(tmp_path: Path, calls: int = 3000, **rate: object) -> Path:
    out = [{"file": {"path": str(tmp_path / "out.jsonl"), "mode": "append"}}]
    cfg = config(tmp_path, out, calls)
    if rate:
        data = yaml.safe_load(cfg.read_text())
        data["input"][0]["rate"] |= rate
        cfg.write_text(yaml.safe_dump(data))
    return cfg


def cli(cfg: Path, checkpoint: Path, *extra: str):
    return run_cli("run", cfg, "--checkpoint", checkpoint, "--metrics-port", "0", "--quiet",
                   "--seed", "7", *extra)


def lines(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]


def test_a_stopped_backfill_resumes_with_the_content_of_an_uninterrupted_run(tmp_path):
    cfg, checkpoint = file_config(tmp_path), tmp_path / "ck.json"
    first = cli(cfg, checkpoint, "--max-events", "1234")
    assert first.code == 0, first.stderr
    assert positions(checkpoint) == {"0": 1234}
    second = cli(cfg, checkpoint)
    assert second.code == 0, second.stderr
    assert "replayed: 1234 produce() call(s)" in second.stderr
    assert second.summary("file-0") == {"timestamps": 3000 - 1234, "produced": 3000 - 1234,
                                            "script_errors": 0, "delivered": 3000 - 1234,
                                            "failed": 0}
    got = {e["id"]: e["r"] for e in lines(tmp_path)}
    assert len(lines(tmp_path)) == 3000
    assert got == expected_events(tmp_path / "s.py", 7, 3000)
    again = cli(cfg, checkpoint)
    assert again.code == 2 and "has finished" in again.stderr and "Delete the file" in again.stderr
    assert len(lines(tmp_path)) == 3000, "a finished checkpoint must not send anything"


def test_workers_resume_their_own_share_and_a_changed_count_is_refused(tmp_path):
    cfg, checkpoint = file_config(tmp_path), tmp_path / "ck.json"
    first = cli(cfg, checkpoint, "--workers", "2", "--max-events", "1000")
    assert first.code == 0, first.stderr
    assert positions(checkpoint) == {"0": 500, "1": 500}
    refused = cli(cfg, checkpoint, "--workers", "3")
    assert refused.code == 2
    assert "--workers 2" in refused.stderr and "--workers 3" in refused.stderr, refused.stderr
    second = cli(cfg, checkpoint, "--workers", "2")
    assert second.code == 0, second.stderr
    got = [e["id"] for e in lines(tmp_path)]
    assert len(got) == len(set(got)) == 3000


def test_a_relative_window_resumes_the_same_window(tmp_path):
    """`start: -10s` resolves against the first run's moment, kept in the checkpoint."""
    cfg = file_config(tmp_path, start="-10s", end="now", per_second=100)
    checkpoint = tmp_path / "ck.json"
    assert cli(cfg, checkpoint, "--max-events", "100").code == 0
    time.sleep(1.1)  # a new "now" would shift the window by a second (100 timestamps)
    assert cli(cfg, checkpoint).code == 0
    got = [e["id"] for e in lines(tmp_path)]
    assert len(got) == len(set(got)) == 1000
    first = datetime.fromisoformat(got[0])
    assert [datetime.fromisoformat(i) for i in got] == [
        first + timedelta(milliseconds=10 * k) for k in range(1000)
    ]


@pytest.mark.parametrize("change, named", [
    ("rate", "config key input[0].rate.per_second changed"),
    ("script", "the script's contents changed"),
    ("seed", "--seed: 7 then, 8 now"),
    ("output", "config key output[0].file.dead_letter changed"),
])
def test_a_checkpoint_of_another_run_is_refused_naming_what_changed(tmp_path, change, named):
    cfg, checkpoint = file_config(tmp_path), tmp_path / "ck.json"
    assert cli(cfg, checkpoint, "--max-events", "10").code == 0
    before = checkpoint.read_bytes()
    extra = []
    if change == "rate":
        cfg.write_text(cfg.read_text().replace(f"per_second: {RATE}", "per_second: 999"))
    elif change == "script":
        (tmp_path / "s.py").write_text(SCRIPT + "# edited\n")
    elif change == "seed":
        extra = ["--seed", "8"]
    else:
        data = yaml.safe_load(cfg.read_text())
        data["output"][0]["file"]["dead_letter"] = "dead.jsonl"
        cfg.write_text(yaml.safe_dump(data))
    refused = cli(cfg, checkpoint, *extra)
    assert refused.code == 2, refused.stderr
    assert named in refused.stderr and str(checkpoint) in refused.stderr, refused.stderr
    assert checkpoint.read_bytes() == before, "a refused run must leave the checkpoint alone"
    assert len(lines(tmp_path)) == 10


def test_checkpoint_in_live_mode_is_a_usage_error(tmp_path):
    cfg, checkpoint = file_config(tmp_path), tmp_path / "ck.json"
    result = cli(cfg, checkpoint, "--mode", "live")
    assert result.code == 2 and "--checkpoint is for --mode backfill" in result.stderr
    assert not checkpoint.exists()
    for every in ("0", "-1", "nan", "soon"):
        bad = cli(cfg, checkpoint, "--checkpoint-every", every)
        assert bad.code == 2 and "--checkpoint-every" in bad.stderr, bad.stderr
    folder = tmp_path / "a-folder"
    folder.mkdir()
    bad = cli(cfg, folder)
    assert bad.code == 2 and str(folder) in bad.stderr and "Traceback" not in bad.stderr
    data = yaml.safe_load(cfg.read_text())
    del data["input"][0]["rate"]["end"]  # a config error: nothing is written
    cfg.write_text(yaml.safe_dump(data))
    bad = cli(cfg, checkpoint)
    assert bad.code == 2 and "input[0].rate.end" in bad.stderr and not checkpoint.exists()


@pytest.mark.parametrize("content", [
    b"", b"\xff\xfe\x00garbage", b"[1, 2]", b'{"version": 1}', b"null",
    b'{"version": 99, "complete": false}',
    b'{"version": 1, "complete": false, "anchor": "2026-01-01T00:00:00+00:00", '
    b'"workers": 1, "positions": {"0": {"ticks": -5}}, "fingerprint": {}}',
    b'{"version": 1, "complete": false, "anchor": 5, "workers": 1, "positions": {}, '
    b'"fingerprint": {}}',
    b"1" * 100_000,
])
def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path, content):
    """Checkpoint.open, in process (our own logic); the CLI's exit 2 is checked once below."""
    from connector.checkpoint import Checkpoint, CheckpointError

    checkpoint = tmp_path / "ck.json"
    checkpoint.write_bytes(content)
    mark = {"script": "x", "seed": None, "workers": 1, "replica": "0 of 1"}
    with pytest.raises(CheckpointError, match=re.escape(str(checkpoint))):
        Checkpoint.open(checkpoint, mark, START)
    assert checkpoint.read_bytes() == content


def test_the_cli_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    cfg, checkpoint = file_config(tmp_path), tmp_path / "ck.json"
    checkpoint.write_bytes(b"\xff\xfe\x00garbage")
    result = cli(cfg, checkpoint)
    assert result.code == 2, result.stderr
    assert "is not a checkpoint" in result.stderr or "cannot read" in result.stderr
    assert str(checkpoint) in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_secrets_from_the_environment_never_reach_the_checkpoint(tmp_path):
    cfg, checkpoint = file_config(tmp_path), tmp_path / "ck.json"
    data = yaml.safe_load(cfg.read_text())
    data["name"] = "${CK_SECRET}"
    cfg.write_text(yaml.safe_dump(data))
    env = {**os.environ, "CK_SECRET": "hunter2-very-secret"}
    result = run_cli("run", cfg, "--checkpoint", checkpoint, "--metrics-port", "0", "--quiet",
                     "--max-events", "5", env=env)
    assert result.code == 0, result.stderr
    assert b"hunter2" not in checkpoint.read_bytes()
    assert "config:name" in json.loads(checkpoint.read_text())["fingerprint"]


def test_an_unwritable_checkpoint_is_a_usage_error(tmp_path):
    cfg = file_config(tmp_path)
    result = cli(cfg, tmp_path / "no-such-folder" / "ck.json")
    assert result.code == 2 and "cannot write checkpoint" in result.stderr, result.stderr


def test_transactional_max_events_cuts_at_a_call_boundary_and_counts_transactions(
        kafka_topic, kafka_bootstrap, tmp_path):
    """Three events a call, --max-events 10: three whole calls (9 events) are committed, never
    a third of the fourth; the summary and /metrics count the transactions alike."""
    topic = kafka_topic("cut", partitions=2)
    script = tmp_path / "three.py"
    script.write_text("def produce(p):\n    t = p['timestamp'].isoformat()\n"
                      "    return [f'{{\"id\": \"{t}-{i}\"}}' for i in range(3)]\n")
    tx = {"id": f"{topic}-id", "commit_every": 0.1}
    cfg = config(tmp_path, [{"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic,
                                       "transactions": tx}}], 100)
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "s.py"), str(script)))
    r = Run(tmp_path, cfg, "--max-events", "10", "--linger", "10", "--quiet")
    scraped = r.metrics_after_summary()
    r.signal(signal.SIGTERM)  # ends the linger
    assert r.wait(30) == 0, r.stderr[-3000:]
    s = r.summary
    assert s.produced == 9 and s.delivered("kafka-0") == 9, s.text
    committed = int(re.search(r"transactions: committed (\d+), aborted 0", s.text)[1])
    assert committed >= 1
    assert scraped[("connector_transactions_total",
                    (("outcome", "committed"), ("output", "kafka-0")))] == committed
    assert scraped[("connector_transactions_total",
                    (("outcome", "aborted"), ("output", "kafka-0")))] == 0
    assert scraped[("connector_transaction_seconds_count", (("output", "kafka-0"),))] >= 1
    got = sorted(ids_of(read_topic(kafka_bootstrap, topic, read_committed=True)))
    assert len(got) == 9 and {i.rsplit("-", 1)[1] for i in got} == {"0", "1", "2"}


def test_credentials_are_left_out_of_the_fingerprint(tmp_path):
    """A rotated password does not invalidate a checkpoint, and neither the password nor a
    hash of it is in the file (the output cannot connect: the run ends, exit 1, at once)."""
    cfg, checkpoint = file_config(tmp_path), tmp_path / "ck.json"
    data = yaml.safe_load(cfg.read_text())
    data["output"] = [{"kafka": {
        "bootstrap_servers": f"127.0.0.1:{free_port()}", "topic": "t", "connect_timeout": 1,
        "producer": {"sasl.username": "u", "sasl.password": "${CK_PASSWORD}"}}}]
    cfg.write_text(yaml.safe_dump(data))
    for password in ("first-secret-123", "rotated-secret-456"):
        env = {**os.environ, "CK_PASSWORD": password}
        result = run_cli("run", cfg, "--checkpoint", checkpoint, "--metrics-port", "0",
                         "--quiet", env=env)
        assert result.code == 1 and "could not start" in result.stderr, result.stderr
        text = checkpoint.read_text()
        assert password not in text and "sasl.password" not in text
        assert "config:output[0].kafka.producer.sasl.username" in text


def test_one_worker_killed_with_transactions_then_resumed_is_exactly_once(
    kafka_topic, kafka_bootstrap, tmp_path
):
    """SIGKILL of one worker of two (the parent lives on: an OOM kill) mid-run, at a point
    read from the run's progress: the run stops naming it, and the run plus its resume add
    up to what a read_committed consumer holds, each event once, as a --seed run has them."""
    from tests.harness.cli import worker_pids

    topic = kafka_topic("txkill", partitions=3)
    markers = kafka_topic("markers", create=False)
    tx = {"id": f"{topic}-id", "commit_every": 0.1, "marker_topic": markers}
    cfg = config(tmp_path, [{"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic,
                                       "transactions": tx}}], CALLS)
    checkpoint, extra = tmp_path / "ck.json", ("--workers", "2")
    first = run(tmp_path, cfg, checkpoint, *extra)
    try:
        wait_for("5000 events delivered", lambda: first.check_alive() and first.metric(
            "connector_events_delivered_total") >= 5000, 60, 0.02)
        killed = worker_pids(first.pid)
        assert len(killed) == 2, killed
        os.kill(killed[1], signal.SIGKILL)
        code = first.wait(120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(10)
    no_traceback(first.stderr)
    s1 = first.summary
    assert code == 1 and re.match(r"summary: stopped: worker \d died", s1.stop), s1.text
    possibly = sum(n for r, n in s1.reasons("kafka-0").items() if "(possibly written)" in r)
    resumed = finish(tmp_path, cfg, checkpoint, *extra)
    assert resumed is not None
    from tests.harness.summary import Summary

    s2 = Summary.parse(resumed)
    events = [json.loads(m.value())
              for m in read_topic(kafka_bootstrap, topic, read_committed=True)]
    got = [e["id"] for e in events]
    assert len(got) == len(set(got)), f"{len(got) - len(set(got))} duplicate(s)"
    assert len(got) == CALLS, f"{len(got)} committed events, the schedule has {CALLS}"
    delivered = s1.delivered("kafka-0") + s2.delivered("kafka-0")
    assert delivered <= CALLS <= delivered + possibly, (s1.text, s2.text)
    expected = expected_events(tmp_path / "s.py", 7, CALLS, 2)
    assert {e["id"]: e["r"] for e in events} == expected, "content differs from a --seed run"
