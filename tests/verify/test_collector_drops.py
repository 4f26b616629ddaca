"""A Collector pipeline that drops some spans (a filter processor on one span name) in
front of a trace store: `connector verify` reports exactly the traces that lost spans as
incomplete, with the dropped span ids, and the others complete."""

from __future__ import annotations

import json

import pytest

from connector.manifest import read_manifest
from tests.harness.cli import no_traceback, run_cli, wait_for

pytestmark = pytest.mark.timeout(300)

# Trace n: a root and a child; every third trace has a third span named "cache-miss".
SCRIPT = """\
import json
n = 0

def produce(params):
    global n
    n += 1
    trace, at = f"{n:032x}", params["timestamp"].isoformat()
    spans = [("root", f"{n:08x}00000001", None), ("child", f"{n:08x}00000002", f"{n:08x}00000001")]
    if n % 3 == 0:
        spans.append(("cache-miss", f"{n:08x}00000003", f"{n:08x}00000001"))
    return [json.dumps({"trace_id": trace, "span_id": span, "parent_span_id": parent,
                        "service": "shop", "operation": name, "start_time": at,
                        "duration_ms": 1.0}) for name, span, parent in spans]
"""


def test_spans_a_collector_filters_out_make_exactly_those_traces_incomplete(collector,
                                                                            tmp_path):
    c = collector("filtering")
    doc = c.config({"traces": {"receivers": ["otlp"], "processors": ["filter/cache"],
                               "exporters": ["jaeger_storage_exporter"]}}, jaeger=True)
    doc["processors"] = {"filter/cache": {"error_mode": "ignore",
                                          "traces": {"span": ['name == "cache-miss"']}}}
    c.start(doc)
    (tmp_path / "s.py").write_text(SCRIPT)
    (tmp_path / "c.yaml").write_text(
        "mode: backfill\nmetrics: {port: 0}\ninput:\n  - cron: {expression: '* * * * * *', "
        "start: '2026-02-20T10:00:00Z', end: '2026-02-20T10:00:30Z'}\n"
        "event: {script: {path: s.py}}\n"
        f"output:\n  - otlp: {{endpoint: '{c.otlp_grpc}'}}\n"
    )
    manifest = tmp_path / "m.manifest"
    result = run_cli("run", tmp_path / "c.yaml", "--manifest", manifest, "--quiet")
    assert result.code == 0, result.stderr
    assert len(read_manifest(manifest).outputs["otlp-0"].traces) == 30

    def report():
        out = run_cli("verify", manifest, "--traces-query", c.query, "--json", "--quiet")
        no_traceback(out.stderr)
        assert out.code in (0, 1), out.stderr
        (row,) = json.loads(out.stdout)["outputs"]
        return row if row["found"] + row["incomplete"] == 30 else None

    row = wait_for("the Collector's store to hold every trace", report, 60, 1)
    assert (row["found"], row["incomplete"], row["missing"]) == (20, 10, 0)
    incomplete = {d["trace_id"]: d["missing_spans"] for d in row["details"]}
    assert incomplete == {f"{n:032x}": [f"{n:08x}00000003"] for n in range(3, 31, 3)}
