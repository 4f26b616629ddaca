"""run / validate / preview: limits, modes, outputs, signals and exit codes."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from connector.testing import free_port
from tests.harness.cli import EXAMPLES, Result, run_cli, run_clis, wait_for, wait_pipe_full

COUNTER = "n = 0\ndef produce(p):\n    global n\n    n += 1\n    return [f'{n}-a', f'{n}-b']\n"


def test_validate_prints_one_line(write):
    result = run_cli("validate", EXAMPLES / "tagged" / "config.yaml")
    assert result.code == 0
    assert result.stdout.count("\n") == 1 and "valid" in result.stdout and "tagged.py" in result.stdout


def test_validate_checks_the_mode(write):
    write("s.py", COUNTER)
    config = write("c.yaml", """
        input: [{cron: {expression: "* * * * *"}}]
        event: {script: {path: s.py}}
        mode: backfill
        """)
    result = run_cli("validate", config)
    assert result.code == 2 and "input[0].cron.end: required in backfill mode" in result.stderr
    assert run_cli("validate", config, "--mode", "live").code == 0


def test_preview_prints_events_and_sends_nothing(write, tmp_path):
    write("s.py", COUNTER)
    config = write("c.yaml", """
        input: [{rate: {per_second: 1}}]
        event: {script: {path: s.py}}
        output: [{file: {path: out.txt}}]
        """)
    result = run_cli("preview", config, "--events", "5")
    assert result.code == 0
    assert result.lines == ["1-a", "1-b", "2-a", "2-b", "3-a"]
    assert not (tmp_path / "out.txt").exists()


def test_preview_at_a_timestamp():
    result = run_cli("preview", EXAMPLES / "tagged" / "config.yaml", "--at", "2026-05-01T12:00:00Z")
    assert result.code == 0
    assert [e["type"] for e in result.json] == ["request", "summary"]
    assert {e["timestamp"] for e in result.json} == {"2026-05-01T12:00:00+00:00"}


def test_max_events_is_exact(write):
    write("s.py", COUNTER)
    config = write("c.yaml", """
        input: [{rate: {per_second: 1000, start: "2026-01-01T00:00:00Z", end: "2026-01-01T01:00:00Z"}}]
        event: {script: {path: s.py}}
        """)
    result = run_cli("run", config, "--mode", "backfill", "--max-events", "7")
    assert result.code == 0
    assert result.lines == ["1-a", "1-b", "2-a", "2-b", "3-a", "3-b", "4-a"]
    assert result.summary("stdout-0")["delivered"] == 7


def test_file_output_append_and_overwrite(write, tmp_path):
    write("s.py", COUNTER)
    for mode, expected in (("append", 8), ("overwrite", 4)):
        config = write("c.yaml", f"""
            input: [{{rate: {{per_second: 1, start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:02Z"}}}}]
            event: {{script: {{path: s.py}}}}
            output: [{{file: {{path: out/events.txt, mode: {mode}}}}}]
            """)
        assert run_cli("run", config, "--mode", "backfill").code == 0
        assert run_cli("run", config, "--mode", "backfill").code == 0
        assert len((tmp_path / "out/events.txt").read_text().splitlines()) == expected


def test_json_formatter_counts_non_json_as_failed(write, tmp_path):
    write("s.py", "def produce(p):\n    return ['{\"a\": 1}', 'not json']\n")
    config = write("c.yaml", """
        input: [{rate: {per_second: 1, start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:03Z"}}]
        event: {script: {path: s.py}}
        output: [{stdout: {formatter: {format: json}, dead_letter: dead.jsonl}}]
        """)
    result = run_cli("run", config, "--mode", "backfill")
    assert result.code == 1
    assert result.lines == ['{"a":1}'] * 3
    assert result.summary("stdout-0") | {} == {
        "timestamps": 3, "produced": 6, "script_errors": 0, "delivered": 3, "failed": 3}
    dead = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [d["value"] for d in dead] == ["not json"] * 3
    assert all(d["error"].startswith("not JSON") for d in dead)


@pytest.mark.wallclock
def test_live_mode_calls_produce_when_due_with_the_scheduled_timestamp(write):
    write("s.py", "import time\ndef produce(p):\n    return f\"{p['timestamp'].isoformat()} {time.time()}\"\n")
    config = write("c.yaml", """
        input: [{cron: {expression: "* * * * * *"}}, {rate: {per_second: 4}}]
        event: {script: {path: s.py}}
        """)
    result = run_cli("run", config, "--duration", "2.5")
    assert result.code == 0
    rows = [line.split() for line in result.lines]
    assert 9 <= len(rows) <= 14
    for scheduled, called in rows:
        lag = float(called) - datetime.fromisoformat(scheduled).timestamp()
        # never before it is due; the upper bound only catches a call a whole cron period
        # late (how late a loaded machine runs it is the bench's lag p99, not a test's)
        assert 0 <= lag < 1.0, (scheduled, called)
    assert "--duration 2.5s reached" in result.stderr


@pytest.mark.wallclock
def test_sigterm_stops_cleanly_and_prints_the_summary(write, tmp_path):
    write("s.py", COUNTER)
    config = write("c.yaml", """
        input: [{rate: {per_second: 50}}]
        event: {script: {path: s.py}}
        output: [{file: {path: out.txt}}]
        """)
    proc = subprocess.Popen([sys.executable, "-m", "connector", "run", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = tmp_path / "out.txt"
    wait_for("21 events written", lambda: out.exists() and out.read_text().count("\n") > 20)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped: SIGTERM received" in err
    delivered = int(err.split("delivered ")[1].split(",")[0])
    written = (tmp_path / "out.txt").read_text().splitlines()
    assert delivered == len(written) > 20


def test_usage_errors_exit_2(tmp_path):
    assert run_cli("run").code == 2
    assert run_cli("run", tmp_path / "nope.yaml").code == 2
    assert run_cli("bogus").code == 2


def test_timestamps_use_the_configured_timezone(write):
    write("s.py", "def produce(p):\n    return p['timestamp'].isoformat()\n")
    config = write("c.yaml", """
        timezone: Asia/Tokyo
        input: [{cron: {expression: "0 9 * * *", start: "2026-01-01T00:00:00+09:00", end: "2026-01-03T00:00:00+09:00"}}]
        event: {script: {path: s.py}}
        """)
    result = run_cli("run", config, "--mode", "backfill")
    assert result.lines == ["2026-01-01T09:00:00+09:00", "2026-01-02T09:00:00+09:00"]
    assert datetime.fromisoformat(result.lines[0]).astimezone(UTC).hour == 0
    assert os.environ.get("TZ") in (None, "", "UTC") or True  # the host's zone plays no part


@pytest.mark.wallclock
def test_max_events_holds_in_live_mode(write):
    write("s.py", COUNTER)
    config = write("c.yaml", """
        input: [{rate: {per_second: 20}}]
        event: {script: {path: s.py}}
        """)
    result = run_cli("run", config, "--max-events", "3", "--duration", "10")
    assert result.code == 0
    assert result.lines == ["1-a", "1-b", "2-a"]
    assert result.summary("stdout-0")["delivered"] == 3 and "--max-events 3 reached" in result.stderr


@pytest.mark.wallclock
def test_bad_numbers_and_environment_are_usage_errors(write):
    write("s.py", COUNTER)
    config = write("c.yaml", """
        input: [{rate: {per_second: 1, shard: true, start: "2026-01-01T00:00:00Z"}}]
        event: {script: {path: s.py}}
        """)
    for flags in (["--max-events", "0"], ["--workers", "0"], ["--duration", "-1"]):
        result = run_cli("run", config, *flags)
        assert result.code == 2 and "must be greater than 0" in result.stderr
    env = {**os.environ, "CONNECTOR_REPLICAS": "2", "CONNECTOR_REPLICA_INDEX": "5"}
    result = run_cli("run", config, "--duration", "1", env=env)
    assert result.code == 2 and "CONNECTOR_REPLICA_INDEX=5" in result.stderr


def test_preview_into_a_reader_that_stops_early():
    proc = subprocess.Popen([sys.executable, "-m", "connector", "preview", str(EXAMPLES / "tracing" / "config.yaml"),
                             "--events", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"{")
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err


# -- issue 10 / 11: help, exit codes, the script's BaseException, start failures, anchoring,
#    signals -------------------------------------------------------------------------------

def test_every_option_has_a_one_line_help_with_its_default():
    import argparse

    from connector.cli import _parser

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest}: no help"
            if action.option_strings and name in ("run", "preview"):
                assert "default" in action.help, f"{name} {action.option_strings}: no default"
    text = " ".join(run_cli("preview", "--help").stdout.split())
    assert "--events N print the first N events (default: 10)" in text
    assert "--seed SEED seed Python's random before the script loads (default: unseeded)" in text


def test_script_errors_exit_1_and_the_run_goes_on(write, tmp_path):
    write("s.py", "n = 0\ndef produce(p):\n    global n\n    n += 1\n"
                  "    if n % 2:\n        raise ValueError('odd')\n    return str(n)\n")
    config = write("c.yaml", """
        mode: backfill
        input: [{rate: {per_second: 1, start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:10Z"}}]
        event: {script: {path: s.py}}
        output: [{file: {path: out.txt}}]
        """)
    result = run_cli("run", config, "--metrics-port", "0")
    assert result.code == 1, result.stderr
    assert result.summary("file-0") == {"timestamps": 10, "produced": 5, "script_errors": 5,
                                        "delivered": 5, "failed": 0}
    assert (tmp_path / "out.txt").read_text().split() == ["2", "4", "6", "8", "10"]
    write("s.py", "def produce(p):\n    return 42\n")  # a wrong type, every call
    result = run_cli("run", config, "--metrics-port", "0")
    assert result.code == 1 and "bad_return_type: 10" in result.stderr


def test_sys_exit_in_produce_is_a_script_error_with_a_summary(write, tmp_path):
    write("s.py", "import sys\nclass Mine(BaseException):\n    pass\nn = 0\n"
                  "def produce(p):\n    global n\n    n += 1\n"
                  "    if n == 3:\n        sys.exit(0)\n"
                  "    if n == 4:\n        raise Mine('custom')\n"
                  "    return str(n)\n")
    config = write("c.yaml", """
        mode: backfill
        input: [{rate: {per_second: 1, start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:06Z"}}]
        event: {script: {path: s.py}}
        output: [{file: {path: out.txt}}]
        """)
    for workers in ("1", "2"):
        result = run_cli("run", config, "--metrics-port", "0", "--workers", workers)
        assert result.code == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert "summary: schedule complete" in result.stderr
        assert "SystemExit" in result.stderr and "s.py:9" in result.stderr  # the script's line
        summary = result.summary("file-0")
        if workers == "1":
            assert summary == {"timestamps": 6, "produced": 4, "script_errors": 2,
                               "delivered": 4, "failed": 0}
            assert "Mine: 1, SystemExit: 1" in result.stderr
        else:  # each worker has its own n: three calls each, the third exits
            assert summary == {"timestamps": 6, "produced": 4, "script_errors": 2,
                               "delivered": 4, "failed": 0}
            assert "SystemExit: 2" in result.stderr


def test_an_output_that_cannot_start_is_one_line_and_exit_1(write, tmp_path):
    write("s.py", COUNTER)
    config = write("c.yaml", f"""
        input: [{{rate: {{per_second: 50}}}}]
        event: {{script: {{path: s.py}}}}
        output:
          - file: {{path: out.txt}}
          - kafka: {{bootstrap_servers: '127.0.0.1:{free_port()}', topic: t, connect_timeout: 3}}
        """)
    for result in run_clis(*(("run", config, "--metrics-port", "0", "--progress-interval", "0.5",
                              "--workers", workers) for workers in ("1", "2")), timeout=60):
        assert result.code == 1, result.stderr
        lines = result.stderr.splitlines()
        head = next(x for x in lines if x.startswith("summary:"))
        assert head.startswith("summary: stopped: output could not start after "), head
        kafka = [x for x in lines if x.startswith("  output kafka-1")]
        assert len(kafka) == 1 and kafka[0].startswith("  output kafka-1: could not start: ")
        assert "  output file-0: delivered 0, failed 0" in lines
        assert "progress:" not in result.stderr  # no "0 events/s" while connecting
        assert "Traceback" not in result.stderr


def test_connecting_lines_and_quiet(write):
    write("s.py", COUNTER)
    config = write("c.yaml", f"""
        input: [{{rate: {{per_second: 50}}}}]
        event: {{script: {{path: s.py}}}}
        output: [{{kafka: {{bootstrap_servers: '127.0.0.1:{free_port()}', topic: t, connect_timeout: 6}}}}]
        """)
    runs = run_clis(*(("run", config, "--metrics-port", "0", "--workers", workers, *quiet)
                      for workers in ("1", "2") for quiet in ((), ("--quiet",))), timeout=60)
    for loud, quiet in (runs[:2], runs[2:]):  # each waits its 6 s connect_timeout: together
        assert "connecting to kafka-0 at 127.0.0.1:" in loud.stderr, loud.stderr
        assert "connecting to" not in quiet.stderr and "could not start" in quiet.stderr
        assert loud.code == quiet.code == 1


@pytest.mark.wallclock
def test_relative_times_count_from_when_every_output_is_ready(write, tmp_path, kafka_topic):
    """200/s with end: +3s is exactly 600 timestamps, however long the outputs take to
    connect, in one process and across workers; --duration counts from the same anchor."""
    from tests.harness.kafka import read_topic

    write("s.py", "def produce(p):\n    return p['timestamp'].isoformat()\n")
    for workers in ("1", "2"):
        topic = kafka_topic("anchor")
        config = write("c.yaml", f"""
            input: [{{rate: {{per_second: 200, end: "+3s"}}}}]
            event: {{script: {{path: s.py}}}}
            output:
              - kafka: {{bootstrap_servers: '{kafka_topic.bootstrap}', topic: {topic}}}
              - file: {{path: out.txt, mode: overwrite}}
            """)
        result = run_cli("run", config, "--metrics-port", "0", "--workers", workers)
        assert result.code == 0, result.stderr
        stamps = (tmp_path / "out.txt").read_text().splitlines()
        assert len(stamps) == len(set(stamps)) == 600, (workers, len(stamps))
        assert result.summary("kafka-0") == {"timestamps": 600, "produced": 600,
                                             "script_errors": 0, "delivered": 600, "failed": 0}
        assert sorted(m.value().decode() for m in read_topic(kafka_topic.bootstrap, [topic])) == sorted(stamps)
    config = write("c.yaml", f"""
        input: [{{rate: {{per_second: 200}}}}]
        event: {{script: {{path: s.py}}}}
        output: [{{kafka: {{bootstrap_servers: '{kafka_topic.bootstrap}', topic: {kafka_topic("d")}}}}}]
        """)
    for workers in ("1", "2"):
        result = run_cli("run", config, "--metrics-port", "0", "--duration", "2", "--workers", workers)
        assert result.code == 0, result.stderr
        assert result.summary("kafka-0")["delivered"] == 400 and "--duration 2s reached" in result.stderr


def test_a_second_signal_ends_a_blocked_write_and_nothing_is_handed_twice(write, tmp_path):
    """A file output into a pipe nobody reads blocks in write_batch. The first SIGTERM stops
    scheduling; the second ends the waiting at once; the summary is printed, every event of
    each output is accounted once, and the other output got each of its events once."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open, never read: the pipe fills
    write("s.py", "n = 0\ndef produce(p):\n    global n\n    n += 1\n    return f'{n:09d}'\n")
    config = write("c.yaml", f"""
        mode: backfill
        input: [{{rate: {{per_second: 1000, start: "2026-01-01T00:00:00Z", end: "2026-01-02T00:00:00Z"}}}}]
        event: {{script: {{path: s.py}}}}
        output:
          - file: {{path: {fifo}, flush_timeout: 60}}
          - file: {{path: out.txt, dead_letter: dead.jsonl}}
        """)
    proc = subprocess.Popen([sys.executable, "-m", "connector", "run", str(config), "--metrics-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_pipe_full(reader)  # the first output holds the pipeline up
        proc.send_signal(signal.SIGTERM)
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
        os.close(reader)
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "interrupted" in err
    result = Result(proc.returncode, "", err)
    produced = result.summary()["produced"]
    for name in ("file-0", "file-1"):
        counts = result.summary(name)
        filtered = counts.get("filtered", 0)  # with a `when` rule
        assert counts["delivered"] + counts["failed"] + filtered == produced, (name, err)
    written = (tmp_path / "out.txt").read_text().splitlines()
    assert written == [f"{n:09d}" for n in range(1, len(written) + 1)]  # each once, in order
    assert len(written) == result.summary("file-1")["delivered"]
    dead = tmp_path / "dead.jsonl"
    assert len(dead.read_text().splitlines() if dead.exists() else []) == result.summary("file-1")["failed"]
