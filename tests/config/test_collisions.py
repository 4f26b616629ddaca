"""Outputs that would write one file are refused by `validate` and `run`, naming both keys:
two file outputs on one path, a dead letter on an output's path or on another dead letter,
a checkpoint on any of them. Paths are compared as files: relative or absolute, through a
symbolic link or a hard link. Before, such configs passed and interleaved their lines."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from connector.cli import main

CONFIG = """
mode: backfill
metrics: {{port: 0}}
input:
  - cron: {{expression: "* * * * * *", start: "2026-02-20T10:00:00+00:00",
           end: "2026-02-20T10:00:02+00:00"}}
event:
  script: {{path: s.py}}
output:
{outputs}
"""


def config(tmp_path: Path, *outputs: str) -> Path:
    (tmp_path / "s.py").write_text("def produce(params):\n    return '{}'\n")
    (tmp_path / "sub").mkdir(exist_ok=True)
    path = tmp_path / "c.yaml"
    lines = "\n".join(f"  - {o}" for o in outputs)
    path.write_text(textwrap.dedent(CONFIG.format(outputs=lines)))
    return path


def cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("outputs", "second", "first"),
    [
        (["file: {path: out.txt}", "file: {path: out.txt, mode: overwrite}"],
         "output[1].file.path", "output[0].file.path"),
        (["file: {path: out.txt}", "file: {path: sub/../out.txt}"],
         "output[1].file.path", "output[0].file.path"),
        (["file: {path: out.txt}", "file: {path: ABS/out.txt}"],
         "output[1].file.path", "output[0].file.path"),
        (["file: {path: out.txt, dead_letter: out.txt}"],
         "output[0].file.dead_letter", "output[0].file.path"),
        (["file: {path: out.txt}", "stdout: {dead_letter: out.txt}"],
         "output[1].stdout.dead_letter", "output[0].file.path"),
        (["null: {dead_letter: dead.jsonl}", "stdout: {dead_letter: ./dead.jsonl}"],
         "output[1].stdout.dead_letter", "output[0].null.dead_letter"),
        (["file: {path: link.txt}", "file: {path: out.txt}"],
         "output[1].file.path", "output[0].file.path"),
        (["file: {path: hard.txt}", "file: {path: out.txt}"],
         "output[1].file.path", "output[0].file.path"),
        (["kafka: {bootstrap_servers: '127.0.0.1:1', topic: t, dead_letter: x.jsonl}",
          "file: {path: x.jsonl}"],
         "output[1].file.path", "output[0].kafka.dead_letter"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_two_writers_on_one_file_are_refused(capsys, tmp_path, outputs, second, first,
                                              command):
    (tmp_path / "out.txt").write_text("")
    os.symlink(tmp_path / "out.txt", tmp_path / "link.txt")
    os.link(tmp_path / "out.txt", tmp_path / "hard.txt")
    outputs = [o.replace("ABS", str(tmp_path)) for o in outputs]
    quiet = ["--quiet"] if command == "run" else []
    code, err = cli(capsys, command, config(tmp_path, *outputs), *quiet)
    assert code == 2, err
    assert f"  {second}: " in err and f" is also {first}; two writers would interleave" in err, err
    assert "summary:" not in err  # nothing ran
    assert (tmp_path / "out.txt").read_text() == ""


def test_a_checkpoint_on_an_output_file_is_refused(capsys, tmp_path):
    path = config(tmp_path, "file: {path: out.txt}", "null: {dead_letter: dead.jsonl}")
    for target, key in ((tmp_path / "out.txt", "output[0].file.path"),
                        (tmp_path / "sub" / ".." / "dead.jsonl", "output[1].null.dead_letter")):
        code, err = cli(capsys, "run", path, "--checkpoint", target, "--quiet")
        assert code == 2, err
        assert f"--checkpoint: {target} is also {key}; two writers would interleave" in err
        assert not (tmp_path / "out.txt").exists()


def test_outputs_that_may_share_a_path_still_can(capsys, tmp_path):
    # a FIFO or a device keeps nothing: two outputs writing /dev/null collide in nothing;
    # and separate files, however alike their names, are separate
    path = config(tmp_path, f"file: {{path: {os.devnull}}}", f"file: {{path: {os.devnull}}}",
                  "file: {path: out.txt, dead_letter: out.txt.dead}", "file: {path: sub/out.txt}")
    code, err = cli(capsys, "run", path, "--quiet")
    assert code == 0, err
    assert (tmp_path / "out.txt").read_text() == "{}\n{}\n"
