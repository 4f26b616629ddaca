"""--workers N: a deterministic split of one schedule, one summary, one /metrics."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from connector.testing import free_port
from tests.harness.cli import Result, run_cli, wait_for, worker_pids
from tests.harness.metrics import http_status, metric, scrape

SCRIPT = "import os\ndef produce(p):\n    return [f\"{p['timestamp'].isoformat()} {os.getpid()}\"] * 2\n"


def test_every_timestamp_once_across_workers(write, tmp_path):
    write("s.py", SCRIPT)
    config = write("c.yaml", """
        mode: backfill
        input:
          - cron: {expression: "* * * * * *", start: "2026-01-01T00:00:00Z", end: "2026-01-01T01:00:00Z"}
          - rate: {per_second: 0.5, count: 2, start: "2026-01-01T00:00:00Z", end: "2026-01-01T01:00:00Z"}
        event: {script: {path: s.py}}
        output: [{file: {path: out.txt}}]
        """)
    result = run_cli("run", config, "--workers", "3")
    assert result.code == 0, result.stderr
    lines = (tmp_path / "out.txt").read_text().splitlines()
    stamps = Counter(line.split()[0] for line in lines)
    assert len(stamps) == 3600
    assert Counter(stamps.values()) == {2: 3600 - 1800, 6: 1800}  # cron 2 events; +2 calls x 2 on even seconds
    assert len({line.split()[1] for line in lines}) == 3  # three processes
    assert result.summary("file-0") == {"timestamps": 3600 + 1800, "produced": len(lines),
                                        "script_errors": 0, "delivered": len(lines), "failed": 0}


def test_the_same_seed_gives_the_same_events(write, tmp_path):
    write("s.py", "import random\ndef produce(p):\n    return f\"{p['timestamp'].isoformat()} {random.random()}\"\n")
    config = write("c.yaml", """
        mode: backfill
        input: [{rate: {per_second: 10, start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:01:00Z"}}]
        event: {script: {path: s.py}}
        output: [{file: {path: out.txt, mode: overwrite}}]
        """)
    runs = []
    for _ in range(2):
        assert run_cli("run", config, "--workers", "2", "--seed", "9").code == 0
        runs.append(sorted((tmp_path / "out.txt").read_text().splitlines()))
    assert runs[0] == runs[1] and len(runs[0]) == 600
    assert len({line.split()[1] for line in runs[0]}) == 600  # workers do not repeat each other


def test_max_events_is_exact_across_workers(write):
    write("s.py", SCRIPT)
    config = write("c.yaml", """
        mode: backfill
        input: [{rate: {per_second: 100, start: "2026-01-01T00:00:00Z", end: "2026-01-01T01:00:00Z"}}]
        event: {script: {path: s.py}}
        """)
    result = run_cli("run", config, "--workers", "3", "--max-events", "11")
    assert result.code == 0
    assert len(result.lines) == 11 and result.summary("stdout-0")["delivered"] == 11


def test_metrics_and_sigterm_with_workers(write, tmp_path):
    port = free_port()
    write("s.py", SCRIPT)
    config = write("c.yaml", """
        input: [{rate: {per_second: 100}}]
        event: {script: {path: s.py}}
        output: [{file: {path: out.txt}}]
        """)
    proc = subprocess.Popen([sys.executable, "-m", "connector", "run", str(config), "--workers", "2",
                             "--metrics-port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        key = ("connector_events_delivered_total", (("output", "file-0"),))
        wait_for("over 100 counted", lambda: (scrape(port) or {}).get(key, 0) > 100, 30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    written = len((tmp_path / "out.txt").read_text().splitlines())
    assert f"delivered {written}, failed 0" in err and "SIGTERM received" in err
    assert len({line.split()[1] for line in (tmp_path / "out.txt").read_text().splitlines()}) == 2


def test_a_worker_that_dies_is_counted(write):
    write("s.py", "import os\ndef produce(p):\n    if p['timestamp'].second == 30:\n        os._exit(3)\n    return 'x'\n")
    config = write("c.yaml", """
        mode: backfill
        input: [{rate: {per_second: 1, start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:02:00Z"}}]
        event: {script: {path: s.py}}
        output: [{null: {}}]
        """)
    started = time.monotonic()
    result = run_cli("run", config, "--workers", "2", timeout=60)
    assert time.monotonic() - started < 30
    assert result.code == 1
    assert "worker 0 died (exit code 3)" in result.stderr
    assert os.environ.get("CI") is None or True


@pytest.mark.wallclock
def test_healthz_reports_a_hung_script_under_workers(write, tmp_path):
    """The script hangs when the test says so (a file appears), not at a moment the
    machine's speed picks."""
    import requests

    port, hang = free_port(), tmp_path / "hang"
    write("s.py", f"import os, time\ndef produce(p):\n    if os.path.exists({str(hang)!r}):\n        time.sleep(3600)\n    return 'x'\n")
    config = write("c.yaml", """
        metrics: {stall_after: 2}
        input: [{rate: {per_second: 20}}]
        event: {script: {path: s.py}}
        output: [{null: {}}]
        """)
    proc = subprocess.Popen([sys.executable, "-m", "connector", "run", str(config), "--workers", "2",
                             "--metrics-port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        wait_for("/readyz to answer 200", lambda: http_status(port, "/readyz") == 200)
        assert http_status(port, "/healthz") == 200  # ten calls a second per worker, waits between: alive
        wait_for("38 events produced", lambda: metric(
            scrape(port), "connector_events_produced_total") >= 38)  # 19 calls each, or more
        hang.touch()
        wait_for("/healthz to answer 503", lambda: http_status(port, "/healthz") == 503, 20)
        body = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        assert body["status"] == "stalled" and "no produce() call" in body["reason"]
        proc.send_signal(signal.SIGTERM)  # the hung call goes on...
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)  # ...until a second signal ends it
        _, err = proc.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # workers too, whatever happened
    assert proc.returncode == 1 and "interrupted" in err and "Traceback" not in err
    produced = Result(1, "", err).summary("null-0")
    assert produced["produced"] == produced["delivered"] >= 36


def test_workers_log_like_the_parent(write, kafka_topic):
    """Time and level on every line, the same rate limit, and secrets redacted: the
    Kafka output registers its producer password as a secret in each worker."""
    import re

    secret = "w0rker-s3cr3t-value"
    write("s.py", "import logging\nlog = logging.getLogger('connector.script.mine')\n"
                  f"def produce(p):\n    log.warning('the password is %s', {secret!r})\n    return 'x'\n")
    config = write("c.yaml", f"""
        mode: backfill
        input: [{{rate: {{per_second: 100, start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:10Z"}}}}]
        event: {{script: {{path: s.py}}}}
        output:
          - kafka:
              bootstrap_servers: '{kafka_topic.bootstrap}'
              topic: {kafka_topic("logs")}
              producer: {{sasl.password: {secret}}}
        """)
    for fmt in ("text", "json"):
        result = run_cli("run", config, "--workers", "2", "--metrics-port", "0", "--log-format", fmt)
        assert result.code == 0, result.stderr
        assert secret not in result.stderr
        lines = [x for x in result.stderr.splitlines() if "the password is" in x]
        # once per worker, then the repeats counted (1000 calls: 500 a worker)
        assert len(lines) == 4, lines
        assert sum("repeated 499 more time(s)" in x for x in lines) == 2, lines
        for line in lines:
            if fmt == "text":
                assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ WARNING connector\.script\.mine: "
                                r"the password is \*\*\*", line), line
            else:
                assert '"level": "warning"' in line and '"time": ' in line and "***" in line


def test_a_worker_killed_mid_backfill_into_kafka_is_accounted_within_a_stated_bound(
    tmp_path, kafka_topic
):
    """SIGKILL one of two workers mid-backfill (at a point read from the run's progress):
    the parent says so at once, the run stops naming it, what the dead worker had handed
    to its producer without an outcome is failed as possibly written, and the topic holds
    the delivered plus at most those; what it produced after its last hand-off, never
    handed to the producer, is the stated unknown."""
    import json
    import re

    from tests.harness.accounts import check_accounts, dead_letters
    from tests.harness.cli import Run, no_traceback
    from tests.harness.faults import write_config, write_script
    from tests.harness.kafka import read_topic

    topic = kafka_topic("killed")
    script = write_script(tmp_path / "s.py", pad=50)
    out = {"kafka": {"bootstrap_servers": kafka_topic.bootstrap, "topic": topic,
                     "dead_letter": str(tmp_path / "dead.jsonl")}}
    config = write_config(tmp_path / "c.yaml", script, [out], 2000, 200)  # 400,000 events
    run = Run(tmp_path, config, "--workers", "2")
    try:
        run.wait_delivered(30_000, timeout=120)
        workers = worker_pids(run.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        code = run.wait(120)
    finally:
        run.kill()
    err = run.stderr
    no_traceback(err)
    s = run.summary
    m = re.search(r"worker (\d) died \(exit code -9\)", err)
    assert m, err[-3000:]
    w = int(m[1])
    assert code == 1 and s.stop.startswith(f"summary: stopped: worker {w} died"), s.text
    assert re.search(rf"ERROR connector: worker {w} died \(exit code -9\); stopping the run", err)
    unknown = re.search(r"unknown: at most (\d+) event\(s\)", s.text)
    assert unknown and int(unknown[1]) == 1000, s.text
    possibly = s.reasons("kafka-0").get(f"worker {w} died (possibly written)", 0)
    dead = dead_letters(tmp_path / "dead.jsonl")
    held = read_topic(kafka_topic.bootstrap, topic)
    check_accounts(s, "kafka-0", dead=dead, held=held, possibly=range(possibly),
                   id_of=lambda m: json.loads(m.value())["id"])
    assert s.produced < 400_000 and s.delivered("kafka-0") >= 30_000, s.text


def test_the_run_time_counts_from_the_first_workers_start(write):
    """As one process's summary counts from its pipeline's start (after its imports), the
    workers' counts from the first worker's, not from before their interpreters started."""
    import dataclasses

    from connector.options import RunOptions
    from connector.workers import Workers

    write("s.py", SCRIPT)
    config = write("c.yaml", """
        mode: backfill
        input: [{cron: {expression: "* * * * * *", start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:10Z"}}]
        event: {script: {path: s.py}}
        output: [{null: {}}]
        """)
    run = Workers(config, RunOptions(mode="backfill"), 2)
    run.started, run.finished = 100.0, 109.0
    assert run.snapshot().started == 100.0  # no worker has said anything yet
    run.snapshots[1] = dataclasses.replace(run._empty(), started=100.4)
    run.snapshots[0] = dataclasses.replace(run._empty(), started=100.3)
    run.finals |= {0, 1}
    total = run.snapshot()
    assert (total.started, total.finished) == (100.3, 109.0)
