"""run / validate / preview: limits, modes, outputs, signals and exit codes."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

from tests.conftest import EXAMPLES, run_cli

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
        assert 0 <= lag < 0.05, (scheduled, called)
    assert "--duration 2.5s reached" in result.stderr


def test_sigterm_stops_cleanly_and_prints_the_summary(write, tmp_path):
    write("s.py", COUNTER)
    config = write("c.yaml", """
        input: [{rate: {per_second: 50}}]
        event: {script: {path: s.py}}
        output: [{file: {path: out.txt}}]
        """)
    proc = subprocess.Popen([sys.executable, "-m", "connector", "run", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
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


def test_bad_numbers_and_environment_are_usage_errors(write):
    write("s.py", COUNTER)
    config = write("c.yaml", """
        input: [{rate: {per_second: 1, shard: true}}]
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
