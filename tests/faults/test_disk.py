"""A file output on a full disk: a small tmpfs where this machine allows mounting (ENOSPC),
and a file-size limit (`ulimit -f`: EFBIG) everywhere. The file's lines and the delivered
count agree exactly, every other event is failed with the reason and dead-lettered (the
dead letter lives on a disk that is not full), and the exit code says something failed."""

from __future__ import annotations

import contextlib
import json
import subprocess

import pytest

from tests.harness.accounts import check_accounts, dead_letters
from tests.harness.cli import Run, no_traceback
from tests.harness.faults import field_of, ns_of, write_config, write_script

pytestmark = pytest.mark.timeout(60)

F = "file-0"


@contextlib.contextmanager
def small_tmpfs(path, size: str):
    """A tmpfs of `size` mounted on path; skips when this machine does not allow it."""
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); "
                    "tests/outputs/test_file.py's file-size-limit test covers a full disk")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def check_full_disk_run(run: Run, events_file, dead_file, reason: str) -> None:
    code = run.wait(45)
    no_traceback(run.stderr)
    s = run.summary
    dead = dead_letters(dead_file)
    check_accounts(s, F, dead=dead)
    assert s.failed(F) > 0 and s.delivered(F) > 0, s.text
    assert code == 1, s.text
    assert len(s.reasons(F)) == 1 and reason in next(iter(s.reasons(F))), s.text
    lines = events_file.read_bytes().split(b"\n")
    assert lines[-1] == b"", "the file ends with a torn line"
    written = ns_of(lines[:-1])  # every line is one whole event
    assert len(written) == s.delivered(F), f"{len(written)} lines for {s.delivered(F)} delivered"
    failed = field_of(dead)
    assert None not in failed
    assert all(json.loads(r["value"])["pad"] for r in dead)  # the whole event, not a piece
    assert sorted(written + failed) == list(range(1, s.produced + 1)), "lost or doubled events"


def test_full_tmpfs_fails_what_it_cannot_write(tmp_path):
    script = write_script(tmp_path / "s.py", pad=100)
    with small_tmpfs(tmp_path / "disk", "64k") as disk:
        out = {"file": {"path": str(disk / "events.jsonl"),
                        "dead_letter": str(tmp_path / "dead.jsonl")}}
        config = write_config(tmp_path / "c.yaml", script, [out], 1000, 1)  # 1,000 events
        run = Run(tmp_path, config, metrics=False)
        check_full_disk_run(run, disk / "events.jsonl", tmp_path / "dead.jsonl",
                            "No space left on device")


def test_a_full_disk_keeps_the_dead_letter_to_whole_lines(tmp_path):
    """The dead letter on a full disk: the record that does not fit is counted lost, never
    half-written; every line of the file is a whole record, one per failure not lost."""
    from connector.outputs.base import Acks

    with small_tmpfs(tmp_path / "disk", "16k") as disk:
        path = disk / "dead.jsonl"
        acks = Acks(F, "file", dead_letter=path)
        for n in range(40):  # about 60 kB of records for 16 kB: most do not fit
            acks.fail("write failed: test", json.dumps({"n": n, "pad": "x" * 1500}))
        acks.settle()
        data = path.read_bytes()
    assert acks.failed == 40 and acks.dead_letter_lost > 0
    assert data.endswith(b"\n"), "the dead letter ends with a torn record"
    records = [json.loads(line) for line in data.split(b"\n")[:-1]]
    assert len(records) == acks.failed - acks.dead_letter_lost
    assert [json.loads(r["value"])["n"] for r in records] == list(range(len(records)))
