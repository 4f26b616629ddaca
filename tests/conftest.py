"""Shared test helpers: run the real CLI, write configs, reach the real services."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def json(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]

    def summary(self, output: str | None = None) -> dict[str, int]:
        """Numbers from the run summary on stderr: timestamps, produced, script_errors,
        and for `output` its delivered / failed."""
        out: dict[str, int] = {}
        for line in self.stderr.splitlines():
            line = line.strip()
            if line.startswith("timestamps:"):
                out["timestamps"] = int(line.split()[1])
            elif line.startswith("events produced:"):
                out["produced"] = int(line.split()[2])
            elif line.startswith("script errors:"):
                out["script_errors"] = int(line.split()[2].rstrip(","))
            elif output and line.startswith(f"output {output}:"):
                parts = line.split(":", 1)[1].replace(",", "").split()
                out["delivered"], out["failed"] = int(parts[1]), int(parts[3])
        return out


def run_cli(*args: str, timeout: float = 120, env: dict | None = None, **kw) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "connector", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, **kw,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def write(tmp_path: Path):
    """write('name', 'text') -> path, dedented, in a fresh folder."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return _write


def _service(script: str, get):
    """Yield get()'s endpoints; stop scripts/<script> afterwards if this session started it."""
    tool = ROOT / "scripts" / script
    started_here = subprocess.run([tool, "status"], capture_output=True).returncode != 0
    yield get()
    if started_here:
        subprocess.run([tool, "stop"], capture_output=True)


@pytest.fixture(scope="session")
def kafka_bootstrap():
    from tests.kafka_service import kafka_bootstrap as get

    yield from _service("local-kafka", get)


@pytest.fixture(scope="session")
def jaeger():
    from tests.jaeger_service import jaeger_endpoints

    yield from _service("local-jaeger", jaeger_endpoints)
