"""`bench/run.py --profile`: each OTLP signal's stages in µs per event, at a tiny size (speed
is never asserted here), and E's twin under `--compare`."""

import importlib.util
import re
import subprocess
import sys

from connector.testing import free_port
from tests.harness.cli import ROOT

SIGNALS = ["logs (basic)", "traces (tracing)", "metrics (multi-service)"]
STAGES = ["script", "parse", "map", "write", "encode", "text", "checked", "checked/text",
          "request", "export", "gzip", "E", "S/E"]


def _profile(*args: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--profile", "--size", "400",
         "--rounds", "1", *args],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)


def test_profile_prints_every_stage_of_every_signal(tmp_path):
    """Against the bench's own Collector (started and stopped by the run)."""
    result = _profile(tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| stage"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == SIGNALS
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and cells[0] in STAGES:
            rows[cells[0]] = [float(c) if c else None for c in cells[1:]]
    assert list(rows) == STAGES
    for stage, cells in rows.items():
        if stage.startswith("checked"):  # metrics have only the one encoder
            assert cells[2] is None
            cells = cells[:2]
        assert all(c is not None and c >= 0 for c in cells), (stage, cells)
        if stage not in ("map", "write"):  # write is encode minus map: may round to 0
            assert all(c > 0 for c in cells), (stage, cells)
    assert re.search(r"^\| events\s+\|\s+400 \|\s+400 \|\s+400 \|$", result.stdout, re.M)


def test_profile_names_an_endpoint_that_does_not_answer(tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    result = _profile("--profile-endpoint", dead, tmp_path=tmp_path)
    assert result.returncode == 1
    assert f"--profile: the OTLP/gRPC endpoint {dead} does not answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_compare_gives_the_encoder_loop_a_twin(tmp_path):
    """E runs REF's own bench loop (REF's encoder), right after this code's."""
    spec = importlib.util.spec_from_file_location("bench_compare", ROOT / "bench" / "compare.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    run = str(ROOT / "bench" / "run.py")
    e = ("tracing", "E", [sys.executable, run, "--inner", "encode", "tracing", "9", "h:1"], False,
         None)
    s = ("tracing", "S", [sys.executable, run, "--inner", "script", "tracing", "9"], False, None)
    plan = compare.twins([s, e], tmp_path, "main")
    assert [row[1] for row in plan] == ["S", "E", "E @main"]
    twin = plan[2]
    assert twin[2] == [str(tmp_path / ".venv" / "bin" / "python"),
                       str(tmp_path / "bench" / "run.py"), "--inner", "encode", "tracing", "9",
                       "h:1"]
    assert twin[3] is False and twin[5] == tmp_path
