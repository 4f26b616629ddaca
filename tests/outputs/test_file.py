"""The file and stdout outputs under hostile events and a failing disk, through the real CLI.

One bad event fails alone, in its output only, with a bounded reason, and is
dead-lettered; a write that cannot complete fails exactly the events it did not write.
Each test reads back what arrived: the file's lines, stdout's lines and the dead-letter
lines agree with the summary, and delivered + failed == produced for every output.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.accounts import dead_letters
from tests.harness.cli import ROOT, Result, run_cli, wait_pipe_full

LIMIT = 64 * 1024  # bytes: `ulimit -f 64`


def config_text(seconds: int, outputs: str, per_second: int | None = None) -> str:
    start = "2026-02-20T10:00:00+00:00"
    end = f"2026-02-20T10:{seconds // 60:02d}:{seconds % 60:02d}+00:00"
    if per_second:
        source = f"rate: {{per_second: {per_second}, start: '{start}', end: '{end}'}}"
    else:
        source = f"cron: {{expression: '* * * * * *', start: '{start}', end: '{end}'}}"
    return f"mode: backfill\ninput: [{{{source}}}]\nevent: {{script: {{path: s.py}}}}\n" + outputs


def file_lines(path: Path) -> list[bytes]:
    """The file's lines as any line reader sees them; a torn last line counts as one."""
    data = path.read_bytes() if path.exists() else b""
    return data.splitlines()


def check(result: Result, output: str, lines: list, dead: list) -> dict[str, int]:
    """The invariants: exit 0/1/2 and truthful, no traceback, accounts exact."""
    assert result.code in (0, 1, 2)
    assert "Traceback" not in result.stderr, result.stderr
    return result.accounts(output, held=lines, dead=dead)


def test_an_unencodable_event_fails_alone_in_file_and_stdout(write):
    # The run: a lone surrogate in the middle event killed the whole run, and the
    # stdout output beside the file lost all nine events from its accounts.
    write("s.py", """
        def produce(params):
            return ['{"a": 1}', '{"a": "\\udcff"}', '{"a": 2}']
        """)
    config = write("c.yaml", config_text(3, """
        output:
          - file: {path: out.jsonl, dead_letter: dead-file.jsonl}
          - stdout: {dead_letter: dead-stdout.jsonl}
        """.replace("\n        ", "\n")))
    result = run_cli("run", config, "--metrics-port", "0")
    folder = config.parent
    file_out, dead_file = file_lines(folder / "out.jsonl"), dead_letters(folder / "dead-file.jsonl")
    s = check(result, "file-0", file_out, dead_file)
    assert result.code == 1  # events failed
    assert s == {"timestamps": 3, "produced": 9, "script_errors": 0, "delivered": 6, "failed": 3}
    assert file_out == [b'{"a": 1}', b'{"a": 2}'] * 3
    dead_stdout = dead_letters(folder / "dead-stdout.jsonl")
    assert check(result, "stdout-1", result.lines, dead_stdout)["delivered"] == 6
    assert result.lines == ['{"a": 1}', '{"a": 2}'] * 3
    for record in dead_file + dead_stdout:
        assert record["value"] == '{"a": "\udcff"}'
        assert record["error"].startswith("not UTF-8 encodable")
    assert "failed: not UTF-8 encodable: 3" in result.stderr


def test_json_format_fails_bad_events_alone(write):
    write("s.py", """
        def produce(params):
            return ['{"a": 1}', '{"a": "\\udcff"}', 'not json', '{"b":\\n 2}']
        """)
    config = write("c.yaml", config_text(2, """
        output:
          - file: {path: out.jsonl, dead_letter: dead.jsonl, formatter: {format: json}}
        """.replace("\n        ", "\n")))
    result = run_cli("run", config, "--metrics-port", "0")
    lines, dead = file_lines(config.parent / "out.jsonl"), dead_letters(config.parent / "dead.jsonl")
    s = check(result, "file-0", lines, dead)
    assert result.code == 1 and (s["delivered"], s["failed"]) == (4, 4)
    assert lines == [b'{"a":1}', b'{"b":2}'] * 2  # compact JSON: one line per event
    # a lone surrogate is JSON's own business (it reads one), UTF-8's refusal
    assert {d["error"].split(":")[0] for d in dead} == {"not JSON", "not UTF-8 encodable"}


def test_an_event_holding_a_line_break_fails_alone(write):
    # The file is one event per line: an event with a line break would read back as two.
    write("s.py", """
        def produce(params):
            return ['one', 'two\\nlines', 'carriage\\rreturn', 'last']
        """)
    config = write("c.yaml", config_text(2, """
        output:
          - file: {path: out.txt, dead_letter: dead.jsonl}
          - stdout: {}
        """.replace("\n        ", "\n")))
    result = run_cli("run", config, "--metrics-port", "0")
    lines, dead = file_lines(config.parent / "out.txt"), dead_letters(config.parent / "dead.jsonl")
    s = check(result, "file-0", lines, dead)
    assert result.code == 1 and (s["delivered"], s["failed"]) == (4, 4)
    assert lines == [b"one", b"last"] * 2
    assert [d["value"] for d in dead] == ["two\nlines", "carriage\rreturn"] * 2
    assert all(d["error"].startswith("holds a line break") for d in dead)
    stdout = result.summary("stdout-1")
    assert (stdout["delivered"], stdout["failed"]) == (4, 4)
    assert result.lines == ["one", "last"] * 2


def _file_size_limit() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() returns EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


# 600 events of ~130 bytes: the limit is hit in the first batch (600/s), or in a later one;
# few enough failures that the dead letter, under the same limit, stays below it.
@pytest.mark.parametrize("per_second", [120, 600])
def test_a_file_size_limit_fails_exactly_the_events_not_written(write, per_second):
    # `ulimit -f 64`: a write crosses the limit (a short write), the rest gets EFBIG, as on
    # a full disk. Before: every event "delivered", exit 0, and the file held fewer lines.
    write("s.py", """
        def produce(params):
            return '{"ts": "%s", "pad": "%s"}' % (params['timestamp'].isoformat(), 'x' * 80)
        """)
    seconds = 600 // per_second
    config = write("c.yaml", config_text(seconds, """
        output:
          - file: {path: out.jsonl, dead_letter: dead.jsonl, mode: overwrite}
        """.replace("\n        ", "\n"), per_second=per_second))
    result = run_cli("run", config, "--metrics-port", "0", preexec_fn=_file_size_limit)
    out = config.parent / "out.jsonl"
    lines, dead = file_lines(out), dead_letters(config.parent / "dead.jsonl")
    s = check(result, "file-0", lines, dead)
    assert result.code == 1
    assert s["produced"] == 600 and 0 < s["delivered"] < 600, result.stderr
    assert out.read_bytes().endswith(b"\n")  # no torn line: whole events only
    assert out.stat().st_size <= LIMIT
    assert all(json.loads(line) for line in lines)
    assert f"failed: write failed: File too large: {s['failed']}" in result.stderr
    assert {d["error"] for d in dead} == {"write failed: File too large"}
    # the events that failed are exactly those after the last written one, in order
    written = [json.loads(line)["ts"] for line in lines]
    failed = [json.loads(d["value"])["ts"] for d in dead]
    assert sorted(written + failed) == written + failed and len(set(written + failed)) == 600


def test_a_closed_stdout_pipe_fails_the_rest_and_the_run_ends_cleanly(write, tmp_path):
    write("s.py", """
        def produce(params):
            return ['x' * 100] * 10
        """)
    config = write("c.yaml", config_text(200, """
        output:
          - stdout: {dead_letter: dead.jsonl}
          - file: {path: out.txt}
        """.replace("\n        ", "\n")))
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector", "run", str(config), "--metrics-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )
    proc.stdout.close()  # the reader goes away before anything is written
    stderr = proc.stderr.read().decode()
    result = Result(proc.wait(timeout=120), "", stderr)
    dead = dead_letters(config.parent / "dead.jsonl")
    s = result.summary("stdout-0")
    assert result.code == 1 and "Traceback" not in stderr, stderr
    assert s["produced"] == 2000 and s["delivered"] + s["failed"] == 2000, stderr
    assert s["failed"] == len(dead) == 2000
    assert {d["error"] for d in dead} == {"write failed: Broken pipe"}
    # the other output is untouched by stdout's failure
    check(result, "file-1", file_lines(config.parent / "out.txt"), [])


def test_stdout_write_errors_are_counted_not_delivered(write):
    # stdout on a full device: before, the events sat in Python's buffer, were counted
    # delivered, and the error surfaced (or not) at exit.
    write("s.py", """
        def produce(params):
            return ['a', 'b\\udcff', 'c']
        """)
    config = write("c.yaml", config_text(5, """
        output:
          - stdout: {dead_letter: dead.jsonl}
        """.replace("\n        ", "\n")))
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "connector", "run", str(config), "--metrics-port", "0"],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT,
        )
    result = Result(proc.returncode, "", proc.stderr)
    dead = dead_letters(config.parent / "dead.jsonl")
    s = check(result, "stdout-0", [], dead)
    assert result.code == 1 and s["produced"] == 15 and s["failed"] == 15
    assert "failed: write failed: No space left on device: 10" in result.stderr
    assert "failed: not UTF-8 encodable: 5" in result.stderr


def test_workers_sharing_a_stdout_pipe_never_mix_their_lines(write):
    # Each worker writes its batches to the same pipe; a write larger than the pipe's
    # atomic size could be split, and another worker's lines land inside a line.
    write("s.py", """
        def produce(params):
            return '{"ts": "%s", "pad": "%s"}' % (params['timestamp'].isoformat(), 'x' * 250)
        """)
    config = write("c.yaml", config_text(10, "output: [{stdout: {}}]\n", per_second=2000))
    result = run_cli("run", config, "--workers", "2", "--metrics-port", "0", timeout=300)
    s = check(result, "stdout-0", result.lines, [])
    assert result.code == 0 and s["produced"] == 20_000, result.stderr
    stamps = [json.loads(line)["ts"] for line in result.lines]  # every line whole JSON
    assert len(set(stamps)) == 20_000


@pytest.mark.wallclock
def test_a_second_signal_during_a_blocked_write_accounts_for_every_event(write, tmp_path):
    # The file is a FIFO whose reader has stopped reading: write() blocks. The first SIGTERM
    # asks to stop; the second interrupts the write. The lines that reached the pipe are
    # delivered, the rest fail as not sent, and nothing is lost between the two.
    import os
    import threading
    import time

    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # held open, not read (yet)
    write("s.py", """
        def produce(params):
            return 'event %s %s' % (params['timestamp'].isoformat(), 'x' * 200)
        """)
    config = write("c.yaml", config_text(100, f"""
        output:
          - file: {{path: {fifo}, dead_letter: dead.jsonl, flush_timeout: 2}}
        """.replace("\n        ", "\n"), per_second=1000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector", "run", str(config), "--metrics-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    err: list[str] = []
    drain = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    drain.start()
    wait_pipe_full(reader)  # the write blocks
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    drain.join(timeout=10)
    received = b""
    while chunk := os.read(reader, 1 << 16):
        received += chunk
    os.close(reader)
    result = Result(code, "", err[0])
    lines = received.split(b"\n")
    assert lines[-1] == b"", "a torn line reached the pipe"
    dead = dead_letters(config.parent / "dead.jsonl")
    s = check(result, "file-0", lines[:-1], dead)
    assert code == 1 and s["produced"] > 0 and s["delivered"] > 0, result.stderr
    assert s["failed"] > 0 and {d["error"] for d in dead} == {"not sent: stopping"}


def test_a_dead_letter_that_cannot_be_written_loses_no_count(write, tmp_path):
    """The dead letter on a full disk: failures are still counted, the summary says how
    many records were lost, and nothing crashes."""
    write("s.py", "def produce(p):\n    return ['ok', 'bad\\nline']\n")
    full = Path("/dev/full")
    config = write("c.yaml", f"""
        mode: backfill
        input: [{{cron: {{expression: "* * * * * *", start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:05Z"}}}}]
        event: {{script: {{path: s.py}}}}
        output: [{{file: {{path: {tmp_path / 'out.txt'}, dead_letter: {full}}}}}]
    """)
    result = run_cli("run", config, "--metrics-port", "0", "--quiet")
    assert result.code == 1
    assert "Traceback" not in result.stderr
    summary = result.summary("file-0")
    assert (summary["produced"], summary["delivered"], summary["failed"]) == (10, 5, 5)
    assert "dead letter: 5 record(s) could not be written" in result.stderr
    assert (tmp_path / "out.txt").read_text().splitlines() == ["ok"] * 5
