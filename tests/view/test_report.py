"""`--report`: the HTML report of real runs (Kafka with transactions, a file output that
fails some events, a routed output; a checkpointed backfill stopped by SIGTERM), opened in
headless chromium with the network off: no console message, every chart drawn with data,
its totals equal to the run's summary. Plus the refusals and the size of an hour's run."""

from __future__ import annotations

import re
import signal
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from connector.stats import LAG_BUCKETS, Histogram, OutputStats, RunStats
from connector.view.facts import RunFacts
from connector.view.report import render
from connector.view.samples import Sample, Samples
from tests.harness.browser import artifacts, open_offline
from tests.harness.cli import Run, run_cli
from tests.harness.kafka import read_topic
from tests.harness.summary import Summary

pytestmark = pytest.mark.timeout(300)

# every 25th call: pretty JSON, two lines (the file output fails it), kind b (routed away)
SCRIPT = """
import json
n = 0
def produce(params):
    global n
    n += 1
    if n % 25 == 0:
        return json.dumps({"kind": "b", "n": n}, indent=1)
    return json.dumps({"kind": "a", "n": n})
"""


def expected_totals(summary: Summary) -> dict[str, int]:
    """The summary's numbers, keyed as the report's totals table keys them."""
    out = {"timestamps": summary.timestamps, "produced": summary.produced,
           "script_errors": summary.script_errors}
    for name, o in summary.outputs.items():
        key = f"output:{name}"
        out[f"{key}:delivered"], out[f"{key}:failed"] = o.delivered, o.failed
        if o.routed:
            out[f"{key}:filtered"] = o.filtered
        if o.transactions is not None:
            out[f"{key}:committed"], out[f"{key}:aborted"] = o.transactions
        for reason, n in o.reasons.items():
            out[f"{key}:reason:{reason}"] = n
    return out


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found += [v for k, v in attrs if k in ("src", "href") and v and "//" in v]


def remote_resources(html: str) -> list[str]:
    """Every tag's src/href that points elsewhere (script text is not tags)."""
    links = _Links()
    links.feed(html)
    return links.found


def check_page(report: Path, summary: Summary, charts: set[str], tmp_path: Path, name: str):
    assert not remote_resources(report.read_text())
    assert report.stat().st_size < 5_500_000
    page = open_offline(report, artifacts() / f"{name}.png", tmp_path / "profile")
    assert page.console == [], page.console
    assert {c.removeprefix("chart-") for c in page.charts} == charts
    for chart, drawn in page.charts.items():
        assert drawn.traces and drawn.marks, f"{chart} drew nothing: {drawn}"
    assert page.totals == expected_totals(summary)
    assert summary.text.split("\n")[1] in page.dom  # the summary itself is on the page
    return page


def test_a_live_kafka_run_with_failures_reads_the_same_in_a_browser(
    tmp_path, kafka_bootstrap, kafka_topic
):
    topic = kafka_topic("view")
    (tmp_path / "s.py").write_text(SCRIPT)
    (tmp_path / "c.yaml").write_text(f"""
name: ramp
mode: live
metrics: {{port: 0}}
input:
  - rate:
      stages:
        - {{duration: 3s, target: 300}}
        - {{duration: 2s, target: 300}}
event:
  script: {{path: s.py}}
output:
  - kafka:
      bootstrap_servers: "{kafka_bootstrap}"
      topic: {topic}
      transactions: {{id: {topic}-tx}}
    name: kafka
  - file: {{path: out.txt, dead_letter: dead.jsonl}}
    name: file
  - null: {{when: {{field: kind, equals: a}}}}
    name: routed
report: ramp.html
""")
    result = run_cli("run", tmp_path / "c.yaml", "--seed", "7", cwd=tmp_path)
    assert result.code == 1, result.stderr[-3000:]  # the file output failed some events
    summary = Summary.parse(result.stderr)
    assert summary.outputs["file"].failed > 0 and summary.outputs["routed"].filtered > 0
    kafka = summary.outputs["kafka"]
    assert len(read_topic(kafka_bootstrap, topic, read_committed=True)) == kafka.delivered
    report = tmp_path / "ramp.html"  # `report:` resolves against the config's folder
    page = check_page(report, summary, {"rates", "lag", "outcomes", "failures", "latency",
                                        "transactions"}, tmp_path, "report-live-kafka")
    assert "s.py" in page.dom and "seed" in page.dom
    assert "No --checkpoint." in page.dom and "The run was not verified." in page.dom


def test_a_checkpointed_backfill_stopped_by_sigterm_still_writes_its_report(tmp_path):
    (tmp_path / "s.py").write_text(SCRIPT)
    (tmp_path / "c.yaml").write_text("""
mode: backfill
input:
  - cron: {expression: "* * * * * *", start: "2026-01-01T00:00:00Z", end: "2027-01-01T00:00:00Z"}
event:
  script: {path: s.py}
output:
  - file: {path: out.txt, dead_letter: dead.jsonl}
    name: file
""")
    report = tmp_path / "stopped.html"
    run = Run(tmp_path, tmp_path / "c.yaml", "--report", str(report),
              "--checkpoint", str(tmp_path / "cp.json"), "--checkpoint-every", "0.2")
    try:
        run.wait_delivered(1000, timeout=120)
        # some seconds of sending: samples to draw (the sampler reads once a second)
        time.sleep(3.5)
        run.check_alive()
        run.signal(signal.SIGTERM)
        run.wait(120)
    finally:
        run.kill()
    summary = run.summary
    assert "SIGTERM received" in summary.stop
    page = check_page(report, summary, {"rates", "outcomes", "failures", "latency",
                                        "checkpoints"}, tmp_path, "report-sigterm")
    assert re.search(r"checkpoints settled</th><td>[1-9]", page.dom)
    assert "SIGTERM received" in page.dom


@pytest.mark.parametrize("where, says", [
    ("folder", "it is a folder, not a file"),
    ("missing/r.html", "does not exist"),
])
def test_a_report_path_that_cannot_take_a_file_is_a_usage_error(tmp_path, where, says):
    (tmp_path / "folder").mkdir()
    (tmp_path / "s.py").write_text("def produce(p):\n    return 'x'\n")
    (tmp_path / "c.yaml").write_text("""
mode: backfill
metrics: {port: 0}
input:
  - cron: {expression: "* * * * * *", start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:03Z"}
event:
  script: {path: s.py}
output:
  - null: {}
""")
    result = run_cli("run", tmp_path / "c.yaml", "--report", tmp_path / where, cwd=tmp_path)
    assert result.code == 2 and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_an_hour_of_a_busy_run_stays_under_about_5_mb(tmp_path):
    def stats(n: int) -> RunStats:
        outputs = [OutputStats(f"out{j}", "kafka", Histogram((0.001, 0.01)), handed=n,
                               delivered=n - j, failed=j, routed=True, filtered=n // 3)
                   for j in range(4)]
        lag = Histogram(LAG_BUCKETS)
        lag.observe_many(0.002, n)
        return RunStats(mode="live", input_names=[f"in{i}" for i in range(4)], counts=[1] * 4,
                        lag=lag, outputs=outputs, calls=[n] * 4, events=[n] * 4,
                        target_rates=[1000.0] * 4)

    samples = Samples()
    for second in range(3600):
        samples.add(Sample.of(float(second), stats(second * 1234)))
    final = stats(3600 * 1234)
    facts = RunFacts("hour", "0", "live", 1, 1, "s.py", "0" * 64, "input: []\n", "now")
    page = render(samples.history(), final, facts)
    assert len(page.encode()) < 5_500_000, len(page.encode())


def test_two_workers_report_the_merged_totals(tmp_path):
    (tmp_path / "s.py").write_text(SCRIPT)
    (tmp_path / "c.yaml").write_text("""
mode: backfill
metrics: {port: 0}
input:
  - cron: {expression: "* * * * * *", start: "2026-01-01T00:00:00Z", end: "2026-01-01T06:00:00Z"}
event:
  script: {path: s.py}
output:
  - file: {path: out.txt, dead_letter: dead.jsonl}
    name: file
""")
    result = run_cli("run", tmp_path / "c.yaml", "--workers", "2", "--report", "w.html",
                     cwd=tmp_path)
    assert result.code == 1, result.stderr[-3000:]  # every 25th event of each worker fails
    summary = Summary.parse(result.stderr)
    assert summary.produced == 6 * 3600
    page = (tmp_path / "w.html").read_text()
    totals = dict(re.findall(r'data-total="([^"]+)">(\d+)<', page))
    assert {k: int(v) for k, v in totals.items()} == expected_totals(summary)
    assert "<th>workers</th><td>2</td>" in page


def test_a_report_that_cannot_be_written_at_the_end_is_said_and_changes_no_exit_code(tmp_path):
    (tmp_path / "s.py").write_text("def produce(p):\n    return 'x'\n")
    (tmp_path / "c.yaml").write_text("""
mode: live
input:
  - rate: {per_second: 50}
event:
  script: {path: s.py}
output:
  - null: {}
""")
    folder = tmp_path / "reports"
    folder.mkdir()
    run = Run(tmp_path, tmp_path / "c.yaml", "--report", str(folder / "r.html"),
              "--duration", "3")
    try:
        run.wait_delivered(10)
        folder.rmdir()  # gone before the run ends
        assert run.wait(60) == 0
    finally:
        run.kill()
    assert "report: cannot write" in run.stderr and "r.html" in run.stderr
    assert "Traceback" not in run.stderr and run.summary.printed


def test_the_verify_canarys_numbers_have_their_place():
    stats = RunStats(mode="backfill", input_names=["in"], counts=[1], lag=Histogram(LAG_BUCKETS),
                     outputs=[], calls=[3], events=[3])
    facts = RunFacts("v", "0", "backfill", None, 1, "s.py", "0" * 64, "{}\n", "now")
    shown = render([], stats, facts, verify={"found": 3, "missing": 0})
    assert '<table id="verify-table"><tr><th>found</th><td>3</td></tr>' in shown
    assert "The run was not verified." in render([], stats, facts)
