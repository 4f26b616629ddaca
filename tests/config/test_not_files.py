"""Config, script, schema and checkpoint paths that are not regular files (a FIFO, a
device, a directory, a socket) are refused at once with exit 2, naming the path. Before,
`validate` on a FIFO without a writer waited for one for ever."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from connector.cli import main

pytestmark = pytest.mark.timeout(60)  # a regression hangs: fail it instead

KINDS = ["fifo", "directory", "device", "socket"]
SAYS = {
    "fifo": "is a FIFO (named pipe), not a",
    "directory": "is a directory, not a",
    "device": "is a character device, not a",
    "socket": "is a socket, not a",
}


@pytest.fixture
def odd(tmp_path):
    """odd(kind) -> a path in tmp_path that is that kind of thing."""
    keep = []

    def make(kind: str) -> Path:
        path = tmp_path / f"odd-{kind}"
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "directory":
            path.mkdir()
        elif kind == "device":
            return Path(os.devnull)
        else:
            server = socket.socket(socket.AF_UNIX)
            server.bind(str(path))
            keep.append(server)
        return path

    yield make
    for server in keep:
        server.close()


CONFIG = """
mode: backfill
metrics: {{port: 0}}
input:
  - cron: {{expression: "* * * * * *", start: "2026-02-20T10:00:00+00:00",
           end: "2026-02-20T10:00:02+00:00"}}
event:
  script: {{path: {script}}}
output:
  - {output}
"""


def config(tmp_path: Path, script: str = "s.py", output: str = "null: {}") -> Path:
    (tmp_path / "s.py").write_text("def produce(params):\n    return '{}'\n")
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(CONFIG.format(script=script, output=output)))
    return path


def cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["validate", "run", "preview"])
def test_a_config_that_is_not_a_file(capsys, odd, kind, command):
    path = odd(kind)
    code, err = cli(capsys, command, path)
    assert code == 2, err
    assert f"{path}: cannot read config: it {SAYS[kind]} file" in err, err


@pytest.mark.parametrize("kind", KINDS)
def test_a_script_that_is_not_a_file(capsys, tmp_path, odd, kind):
    path = odd(kind)
    code, err = cli(capsys, "validate", config(tmp_path, script=str(path)))
    assert code == 2, err
    assert f"event.script.path: script {path} {SAYS[kind]} file" in err, err


@pytest.mark.parametrize("kind", KINDS)
def test_a_schema_that_is_not_a_file(capsys, tmp_path, odd, kind):
    path = odd(kind)
    output = ("kafka: {bootstrap_servers: 127.0.0.1:1, topic: t, schema_registry: "
              f"{{url: 'http://127.0.0.1:1'}}, value_schema: {{format: avro, path: {path}}}}}")
    code, err = cli(capsys, "validate", config(tmp_path, output=output))
    assert code == 2, err
    assert f"output[0].kafka.value_schema.path: {path} {SAYS[kind]} regular file" in err, err


@pytest.mark.parametrize("kind", KINDS)
def test_a_checkpoint_that_is_not_a_file(capsys, tmp_path, odd, kind):
    path = odd(kind)
    code, err = cli(capsys, "run", config(tmp_path), "--checkpoint", path, "--quiet")
    assert code == 2, err
    assert f"--checkpoint {path}: it {SAYS[kind]} file" in err, err
    assert "summary:" not in err  # refused before anything ran


def test_validate_on_a_fifo_without_a_writer_returns_at_once(tmp_path):
    # the real entry point: nothing opens the FIFO for writing, and nothing waits for it
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "connector", "validate", str(fifo)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert f"{fifo}: cannot read config: it is a FIFO (named pipe), not a file" in proc.stderr
    assert "Traceback" not in proc.stderr
