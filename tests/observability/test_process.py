"""The metrics endpoint under a crowd, and the process's own figures.

- 200 scrapers at once, half of them hanging up before the answer: no traceback on stderr
  (a scraper that goes away is no error), every other scrape answered quickly, and the
  run keeps its schedule. Before: 170 raw BrokenPipeError tracebacks and a p99 of 3.8 s.
- prometheus-client's process collector (resident memory, CPU, open files) is served and
  on the chart's dashboard; `metrics.memory_warning` warns once past its bound, and
  /healthz reports the memory it saw.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from connector.metrics import PROCESS_METRICS, MemoryWatch, MetricsServer
from connector.testing import free_port

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.timeout(120)


def scrape_at_once(port: int, n: int) -> tuple[list[float], list[bytes], list[str]]:
    """n scrapers at once; the odd ones hang up as soon as they have asked. (seconds of
    each answered scrape, the bodies, the errors)"""
    seconds, bodies, errors = [], [], []
    go = threading.Event()

    def one(i: int) -> None:
        go.wait()
        began = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if i % 2:
                    return  # gone before the answer
                data = b""
                while chunk := s.recv(1 << 16):
                    data += chunk
            seconds.append(time.monotonic() - began)
            bodies.append(data)
        except OSError as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(60)
    return sorted(seconds), bodies, errors


def test_two_hundred_scrapers_some_hanging_up(tmp_path):
    (tmp_path / "s.py").write_text("def produce(params):\n    return '{}'\n")
    (tmp_path / "c.yaml").write_text(
        "input:\n  - rate: {per_second: 5000}\nevent:\n  script: {path: s.py}\n"
        "output:\n  - null: {}\n")
    port = free_port()
    with open(tmp_path / "err.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "connector", "run", "c.yaml", "--quiet",
                                 "--metrics-port", str(port), "--duration", "8"],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while "metrics on" not in (tmp_path / "err.txt").read_text():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(1)
        seconds, bodies = [], []
        for _ in range(2):
            s, b, errors = scrape_at_once(port, 200)
            assert not errors, errors[:5]
            seconds += s
            bodies += b
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in err and "Error" not in err, err[-3000:]
    assert len(bodies) == 200  # every scraper that waited was answered, whole
    for body in bodies:
        head, _, payload = body.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200"), head
        length = int(re.search(rb"Content-Length: (\d+)", head)[1])
        assert len(payload) == length  # whole
        assert b"connector_events_produced_total" in body
        assert b"process_resident_memory_bytes" in body
    p99 = seconds[int(len(seconds) * 0.99) - 1]
    assert p99 < 2.0, f"p99 {p99:.2f}s"
    assert "timestamps: 40000" in err  # the run kept its schedule: 5,000/s for 8 s
    lag = float(re.search(r"schedule lag p99: <= ([\d.]+) ms", err)[1])
    assert lag < 1000, err


def test_the_process_collector_is_served_and_on_the_dashboard():
    server = MetricsServer("127.0.0.1", 0, "c")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
            text = r.read().decode()
    finally:
        server.close()
    for name in PROCESS_METRICS:
        assert re.search(rf"^{name} \d", text, re.M), name
    dashboard = json.loads((ROOT / "charts/connector/dashboards/connector.json").read_text())
    exprs = "\n".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for shown in ("process_resident_memory_bytes", "rate(process_cpu_seconds_total",
                  "process_open_fds"):
        assert shown in exprs, f"no panel shows {shown}"
    used = set(re.findall(r"\bprocess_\w+", exprs))
    assert used <= set(PROCESS_METRICS), used


def test_memory_past_its_bound_is_said_once(tmp_path):
    (tmp_path / "s.py").write_text(
        "kept = []\ndef produce(params):\n    kept.append(b'x' * (40 << 20))\n    return '{}'\n")
    (tmp_path / "c.yaml").write_text(
        "mode: backfill\nmetrics: {port: 0, memory_warning: 300}\n"
        "input:\n  - cron: {expression: '* * * * * *', start: '2026-02-20T10:00:00Z',"
        " end: '2026-02-20T10:00:10Z'}\nevent:\n  script: {path: s.py}\noutput:\n  - null: {}\n")
    proc = subprocess.run([sys.executable, "-m", "connector", "run", "c.yaml", "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr  # a warning, not a failure
    said = [line for line in proc.stderr.splitlines() if "metrics.memory_warning" in line]
    assert len(said) == 1, proc.stderr
    assert "WARNING" in said[0] and "past metrics.memory_warning (300 MiB)" in said[0]


def test_healthz_reports_the_memory_it_saw():
    server = MetricsServer("127.0.0.1", 0, "c")
    server.memory = MemoryWatch(1)  # 1 MiB: any process is past it
    try:
        server.memory.check()
        code, body = server.health()
    finally:
        server.memory.stop()
        server.close()
    assert code == 200  # reported, not a reason for the probe to restart the pod
    assert body["resident_memory_bytes"] > 1 << 20
    assert body["memory"] == "past metrics.memory_warning (1 MiB)"
