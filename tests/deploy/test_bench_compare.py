"""`bench/run.py --compare REF`: every connector row beside its twin on REF's code, in its
own tree and venv (speed is never asserted here: only that the comparison is made)."""

import json
import os
import re
import subprocess
import sys
import uuid

from tests.harness.cli import ROOT


def test_compare_runs_each_connector_row_beside_its_twin_on_the_old_code(
    kafka_bootstrap, schema_registry_url, jaeger, tmp_path
):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "BENCH_TOPIC_PREFIX": f"bench-test-{uuid.uuid4().hex[:8]}-", "TMPDIR": str(scratch),
           "SCHEMA_REGISTRY_URL": schema_registry_url}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--size", "2000", "--rounds", "2",
         "--rows", "S,null", "--live-seconds", "0", "--ramp-seconds", "0", "--no-telemetrygen",
         "--compare", "HEAD", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(scratch.iterdir()) == []  # REF's tree and venv went with the run
    [written] = (tmp_path / "out").glob("*.json")
    report = json.loads(written.read_text())
    assert report["compare"]["ref"] == "HEAD"
    for example in ("basic", "tracing"):
        rows = report["results"][example]
        assert {"S", "null", "null @HEAD"} <= set(rows)  # S has no twin: not a connector row
        assert "S @HEAD" not in rows
        assert rows["null @HEAD"]["median"] > 0
    assert "this code against HEAD" in result.stdout
    # the rounds alternate which of the two runs first
    order = {}
    for line in result.stderr.splitlines():
        found = re.match(r"round (\d+): basic\s+(null(?: @HEAD)?)\s", line)
        if found:
            order.setdefault(found[1], []).append(found[2])
    assert order == {"1": ["null", "null @HEAD"], "2": ["null @HEAD", "null"]}

def test_compare_names_a_ref_that_is_not_there(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--compare", "no-such-ref-here",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert result.returncode != 0
    assert "--compare no-such-ref-here" in result.stderr
