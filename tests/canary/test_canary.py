"""The live canary (`verify:` on a kafka output) against a broker of the test's own:
while the run goes on it reads acknowledged records back; paused past `timeout`, the
samples in flight are missing; resumed, it finds records again. /metrics, the
summary and the HTML report show both."""

from __future__ import annotations

import re
import signal
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.harness.cli import Run, no_traceback, wait_for
from tests.harness.faults import write_config, write_script

pytestmark = pytest.mark.timeout(300)
CHECKED = "connector_verify_checked_total"
VISIBLE = "connector_verify_visible_seconds"


def test_the_canary_reports_a_paused_broker_and_recovers(private_kafka, tmp_path):
    bootstrap = private_kafka.bootstrap
    topic = f"canary-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (made,) = admin.create_topics([NewTopic(topic, 2, 1)]).values()
    made.result(timeout=30)
    script = write_script(tmp_path / "s.py", pad=20)
    config = write_config(tmp_path / "c.yaml", script, [{"kafka": {
        "bootstrap_servers": bootstrap, "topic": topic, "key": "id",
        "verify": {"every": "0.5s", "sample": 5, "delay": "2s", "timeout": "4s"}}}],
        per_second=50)
    run = Run(tmp_path, config, "--duration", "120", "--report", str(tmp_path / "r.html"))
    try:
        wait_for("the canary to find records", lambda: run.check_alive() and run.metric(
            CHECKED, output="kafka-0", result="found") >= 10, 60, 0.2)
        assert run.metric(CHECKED, output="kafka-0", result="missing") == 0
        visible = run.metric(f"{VISIBLE}_sum") / run.metric(f"{VISIBLE}_count")
        assert visible >= 2  # it reads a sample back only after `delay`
        private_kafka.pause()  # samples taken in the last 2 s are still to be read
        try:
            wait_for("samples to go missing while the broker is paused", lambda: run.metric(
                CHECKED, output="kafka-0", result="missing") >= 1, 30, 0.2)
        finally:
            private_kafka.resume()
        found = run.metric(CHECKED, output="kafka-0", result="found")
        wait_for("the canary to find records again", lambda: run.metric(
            CHECKED, output="kafka-0", result="found") >= found + 10, 60, 0.2)
        missing = run.metric(CHECKED, output="kafka-0", result="missing")
        assert run.metric(CHECKED, output="kafka-0", result="altered") == 0
        run.signal(signal.SIGTERM)
        assert run.wait(60) == 0, run.stderr
    finally:
        run.kill()
    no_traceback(run.stderr)
    line = next(x for x in run.stderr.splitlines() if x.startswith("    canary: "))
    found, gone, altered = map(int, re.findall(
        r"found (\d+), missing (\d+), altered (\d+)", line)[0])
    assert gone >= missing >= 1 and found >= 20 and altered == 0, line
    assert "visible p99 <=" in line
    # the HTML report's verify table says what the summary says
    page = (tmp_path / "r.html").read_text()
    table = page.split('id="verify-table">', 1)[1].split("</table>", 1)[0]
    rows = dict(re.findall(r"<tr><th>(\w+)</th><td>(\d+)</td></tr>", table))
    assert rows.get("found") == str(found) and rows.get("missing") == str(gone), table
