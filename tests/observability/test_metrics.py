"""Metrics over real HTTP, health probes, a real Prometheus server, and the progress line."""

import os
import pty
import shutil
import subprocess
import sys
import time
import uuid

import pytest
import requests

from connector.metrics import METRICS
from connector.testing import free_port
from tests.harness.cli import EXAMPLES, ROOT, start_run, wait_for
from tests.harness.kafka import read_topic
from tests.harness.metrics import http_status, scrape

BASIC = EXAMPLES / "basic" / "produce.py"


@pytest.mark.wallclock
def test_counters_equal_the_summary_and_what_kafka_holds(kafka_bootstrap, kafka_topic, write):
    port, topic = free_port(), kafka_topic("metrics")
    write("s.py", "def produce(p):\n    if p['timestamp'].microsecond % 7 == 0:\n        raise KeyError('k')\n    return ['a', 'b']\n")
    config = write("c.yaml", f"""
        name: metrics-test
        input: [{{name: load, rate: {{per_second: 300}}}}]
        event: {{script: {{path: s.py}}}}
        output: [{{name: to-kafka, kafka: {{bootstrap_servers: '{kafka_bootstrap}', topic: {topic}}}}}]
        """)
    proc = start_run(config, "--duration", "4", "--metrics-port", str(port), "--linger", "20")
    try:
        during = wait_for("a delivery counted", lambda: (m := scrape(port)) and m.get(
            ("connector_events_delivered_total", (("output", "to-kafka"),))) and m)
        assert during[("connector_info", (("config_name", "metrics-test"), ("version", "0.1.0")))] == 1
        wait_for("/healthz to answer 503", lambda: http_status(port, "/healthz") == 503, 30)  # the run has ended
        after = scrape(port)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    delivered = after[("connector_events_delivered_total", (("output", "to-kafka"),))]
    produced = after[("connector_events_produced_total", (("input", "load"),))]
    ticks = after[("connector_timestamps_total", (("input", "load"),))]
    errors = after[("connector_script_errors_total", (("error", "KeyError"),))]
    assert f"delivered {int(delivered)}, failed 0" in err
    assert f"events produced: {int(produced)} " in err
    assert f"timestamps: {int(ticks)}" in err and ticks > 1000
    assert produced == delivered == 2 * (ticks - errors) and errors > 0
    assert after[("connector_output_pending_events", (("output", "to-kafka"),))] == 0
    assert after[("connector_delivery_latency_seconds_count", (("output", "to-kafka"),))] == delivered
    assert after[("connector_schedule_lag_seconds_count", ())] == ticks
    assert 0 < after[("connector_schedule_lag_seconds_sum", ())] < ticks * 0.01  # real, and small
    assert len(read_topic(kafka_bootstrap, [topic])) == delivered


@pytest.mark.wallclock
def test_readyz_follows_the_broker(private_kafka, write):
    """On a broker of the test's own: down at start, /readyz names the output; up, ready."""
    broker = private_kafka
    broker.stop()
    port = free_port()
    config = write("c.yaml", f"""
        input: [{{rate: {{per_second: 20}}}}]
        event: {{script: {{path: {BASIC}}}}}
        output: [{{kafka: {{bootstrap_servers: '{broker.bootstrap}', topic: ready-{uuid.uuid4().hex[:8]}, connect_timeout: 120}}}}]
        """)
    proc = start_run(config, "--duration", "10", "--metrics-port", str(port))
    try:
        wait_for("/healthz to answer 200", lambda: http_status(port, "/healthz") == 200)
        assert http_status(port, "/readyz") == 503
        body = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        assert body["ready"] is False and "kafka-0" in body["reason"]
        broker.start()
        wait_for("/readyz to answer 200", lambda: http_status(port, "/readyz") == 200, 90)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "delivered 200, failed 0" in err  # --duration counts from when it was ready


@pytest.mark.wallclock
def test_healthz_flips_when_the_pipeline_dies(write):
    port = free_port()
    write("s.py", "import time\nT0 = time.time()\ndef produce(p):\n    if time.time() - T0 > 2:\n        raise RuntimeError('dead')\n    return 'x'\n")
    config = write("c.yaml", """
        input: [{rate: {per_second: 50}}]
        event: {script: {path: s.py, on_error: stop}}
        output: [{null: {}}]
        """)
    proc = start_run(config, "--metrics-port", str(port), "--linger", "10")
    try:
        wait_for("/healthz to answer 200", lambda: http_status(port, "/healthz") == 200)
        wait_for("/healthz to answer 503", lambda: http_status(port, "/healthz") == 503, 15)
        body = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        assert "RuntimeError: dead" in body["reason"]
        assert http_status(port, "/readyz") == 503
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 1


@pytest.fixture
def prometheus(tmp_path):
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed: scripts/test installs Debian's `prometheus` package"
    target, port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: connector, static_configs: [{{targets: ['127.0.0.1:{target}']}}]}}]\n")
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("/-/ready to answer 200", lambda: http_status(port, "/-/ready") == 200)
        yield port, target
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.wallclock
def test_a_real_prometheus_sees_the_configured_rate(prometheus, write):
    prom, target = prometheus
    config = write("c.yaml", f"""
        input: [{{rate: {{per_second: 200}}}}]
        event: {{script: {{path: {BASIC}}}}}
        output: [{{file: {{path: out.txt}}}}]
        """)
    proc = start_run(config, "--duration", "30", "--metrics-port", str(target))

    def measured():
        r = requests.get(f"http://127.0.0.1:{prom}/api/v1/query", timeout=5,
                         params={"query": "rate(connector_events_delivered_total[10s])"}).json()
        result = r["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    try:
        time.sleep(15)
        value = wait_for("a rate in Prometheus", measured, 10)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert 180 <= value <= 220, value


@pytest.mark.wallclock
def test_progress_line_on_a_terminal_and_logs_when_piped(write):
    config = write("c.yaml", f"""
        mode: backfill
        input: [{{rate: {{per_second: 1000, start: "-10m", end: "now"}}}}]
        event: {{script: {{path: {BASIC}}}}}
        output: [{{null: {{}}}}]
        """)
    # under a pseudo-terminal with --no-view: a refreshed line with a bar (without it, the
    # live view: tests/view/test_live.py)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "connector", "run", str(config), "--metrics-port", "0",
                             "--no-view"],
                            stdout=subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(leader)
    text = seen.decode()
    assert "\r\x1b[K" in text and "events/s" in text and "ETA" in text and "%" in text

    piped = subprocess.run([sys.executable, "-m", "connector", "run", str(config), "--metrics-port", "0",
                            "--progress-interval", "0.5"], capture_output=True, text=True, timeout=120)
    assert "\r" not in piped.stderr
    assert "progress: " in piped.stderr and "events/s" in piped.stderr
    quiet = subprocess.run([sys.executable, "-m", "connector", "run", str(config), "--metrics-port", "0",
                            "--progress-interval", "0.5", "--quiet"], capture_output=True, text=True, timeout=120)
    assert "progress" not in quiet.stderr and "summary:" in quiet.stderr


def test_dashboard_and_readme_use_only_exported_metrics():
    import json
    import re

    dashboard = json.loads((ROOT / "charts/connector/dashboards/connector.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert exprs
    names = {re.sub(r"_(bucket|sum|count)$", "", n)
             for e in exprs for n in re.findall(r"connector_[a-z_]+", e)}
    assert names and names <= set(METRICS), names - set(METRICS)
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `(connector_[a-z_]+)`", readme, re.M))
    assert documented == set(METRICS)


@pytest.mark.wallclock
def test_healthz_reports_a_hung_script(write, tmp_path):
    """The script hangs when the test says so (a file appears), not at a moment the
    machine's speed picks."""
    port, hang = free_port(), tmp_path / "hang"
    write("s.py", f"import os, time\ndef produce(p):\n    if os.path.exists({str(hang)!r}):\n        time.sleep(3600)\n    return 'x'\n")
    config = write("c.yaml", """
        metrics: {stall_after: 2}
        input: [{rate: {per_second: 10}}]
        event: {script: {path: s.py}}
        output: [{null: {}}]
        """)
    proc = start_run(config, "--metrics-port", str(port))
    try:
        wait_for("/healthz to answer 200", lambda: http_status(port, "/healthz") == 200)
        time.sleep(1.5)  # ten calls a second, each followed by a wait for the clock: alive
        assert http_status(port, "/healthz") == 200
        hang.touch()
        wait_for("/healthz to answer 503", lambda: http_status(port, "/healthz") == 503, 15)
        body = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        assert body["status"] == "stalled" and "no produce() call" in body["reason"]
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_the_readers_depend_on_run_stats_only():
    """metrics and progress read a RunStats and import nothing else of the connector
    (the old metrics <-> pipeline import cycle); stats imports nothing of it at all."""
    import ast

    def imports(module: str) -> set[str]:
        tree = ast.parse((ROOT / "connector" / f"{module}.py").read_text())
        return {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("connector")}

    assert imports("metrics") == {"connector", "connector.stats"}
    assert imports("progress") == {"connector.stats"}
    assert imports("stats") == set()
