"""stderr that cannot be written (`2>/dev/full`, a closed stderr) changes nothing in the
run or in its exit code: the exit code says what happened to the events. Before, the
summary's failed write ended `run` in the bug path (exit 1), a closed stderr stopped it
before it ran, and a script's own write to stderr was a script error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = """
mode: backfill
metrics: {port: 0}
input:
  - cron: {expression: "* * * * * *", start: "2026-02-20T10:00:00+00:00",
           end: "2026-02-20T10:00:05+00:00"}
event:
  script: {path: s.py}
output:
  - file: {path: out.txt, mode: overwrite, dead_letter: dead.jsonl}
"""

# A script that talks on stderr, through Python and straight to the descriptor; one
# event of five cannot be one line (it fails: the exit code is 1 for that alone).
SCRIPT = """
import os, sys
n = 0
def produce(params):
    global n
    n += 1
    print("debug", n, file=sys.stderr, flush=True)
    try:
        os.write(2, b"raw debug\\n")
    except OSError:
        pass
    return "e%d" % n if n != {bad} else "two\\nlines"
"""


def run(tmp_path: Path, stderr: str, bad: int = 0, *args: str) -> int:
    (tmp_path / "s.py").write_text(SCRIPT.replace("{bad}", str(bad)))
    (tmp_path / "c.yaml").write_text(CONFIG)

    def close_stderr() -> None:
        os.close(2)

    target = {"full": "/dev/full", "closed": os.devnull}[stderr]
    with open(target, "w") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "connector", "run", "c.yaml", *args], cwd=tmp_path,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=120,
            preexec_fn=close_stderr if stderr == "closed" else None,
        )
    return proc.returncode


@pytest.mark.parametrize(("stderr", "workers"), [("full", "1"), ("closed", "1"), ("full", "2")])
def test_unwritable_stderr_changes_nothing(tmp_path, stderr, workers):
    assert run(tmp_path, stderr, 0, "--workers", workers) == 0
    lines = (tmp_path / "out.txt").read_text().split("\n")
    # every event, and nothing else: a closed stderr's descriptor was not handed to the
    # output file, where the script's raw writes to fd 2 would have landed
    want = ["e1", "e2", "e3", "e4", "e5"] if workers == "1" else ["e1", "e1", "e2", "e2", "e3"]
    assert sorted(lines) == ["", *want], lines  # (each worker counts its own calls)
    assert not (tmp_path / "dead.jsonl").exists()


@pytest.mark.parametrize("stderr", ["full"])
def test_a_failed_event_still_exits_1(tmp_path, stderr):
    assert run(tmp_path, stderr, 3) == 1
    assert (tmp_path / "out.txt").read_text() == "e1\ne2\ne4\ne5\n"
    assert (tmp_path / "dead.jsonl").read_text().count("\n") == 1


@pytest.mark.parametrize("stderr", ["closed"])
def test_validate_still_says_2_for_an_invalid_config(tmp_path, stderr):
    (tmp_path / "c.yaml").write_text("input: []\n")
    with open({"full": "/dev/full", "closed": os.devnull}[stderr], "w") as err:
        proc = subprocess.run([sys.executable, "-m", "connector", "validate", "c.yaml"],
                              cwd=tmp_path, stderr=err, timeout=60,
                              preexec_fn=(lambda: os.close(2)) if stderr == "closed" else None)
    assert proc.returncode == 2
