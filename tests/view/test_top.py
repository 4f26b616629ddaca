"""`connector top` against three real replicas of a sharded live run into Kafka (one
stopped midway), read back from a pseudo-terminal: the stopped one shows down with its
last numbers kept and marked, and the merged view ends at the replicas' summaries, which
the topic holds. Plus the sources: a file of URLs, dns:// names, bad input."""

from __future__ import annotations

import io
import signal
import socket
from datetime import UTC, datetime

import pytest
from rich.console import Console

from connector.view.fleet import Fleet, Replica, frame
from connector.view.samples import Sample
from connector.view.scrape import parse
from connector.view.sources import read_sources, targets
from tests.harness.cli import Run, run_cli, wait_for
from tests.harness.kafka import read_topic
from tests.harness.terminal import Terminal, number, view_rows

pytestmark = pytest.mark.timeout(300)


def replica_row(screen: list[str], port: int) -> list[str] | None:
    rows = view_rows(screen, "replicas")
    return next((row for url, row in rows.items() if f":{port}/" in url), None)


@pytest.mark.wallclock
def test_three_sharded_replicas_one_stopped_midway(tmp_path, monkeypatch, kafka_bootstrap,
                                                    kafka_topic):
    topic = kafka_topic("top")
    (tmp_path / "s.py").write_text("def produce(p):\n    return '{\"n\": 1}'\n")
    start = datetime.now(UTC).replace(microsecond=0).isoformat()
    (tmp_path / "c.yaml").write_text(f"""
name: fleet
mode: live
input:
  - rate: {{per_second: 300, shard: true, start: "{start}"}}
event:
  script: {{path: s.py}}
output:
  - kafka: {{bootstrap_servers: "{kafka_bootstrap}", topic: {topic}}}
    name: kafka
""")
    monkeypatch.setenv("CONNECTOR_REPLICAS", "3")
    runs = []
    for i in range(3):
        folder = tmp_path / f"r{i}"
        folder.mkdir()
        monkeypatch.setenv("CONNECTOR_REPLICA_INDEX", str(i))
        runs.append(Run(folder, tmp_path / "c.yaml", "--linger", "8"))  # top reads the finals
    urls = [f"http://127.0.0.1:{r.metrics_port}" for r in runs]
    (tmp_path / "urls.txt").write_text(f"# the third replica\n{urls[2]}\n\n")
    top = None
    try:
        for r in runs:
            r.wait_delivered(50)
        top = Terminal("top", urls[0], f"127.0.0.1:{runs[1].metrics_port}/metrics",
                       "--file", tmp_path / "urls.txt", "--interval", "0.5", cwd=tmp_path)
        top.wait_screen("3 replica(s), 3 up", timeout=30)

        runs[1].signal(signal.SIGTERM)  # one replica stops midway
        assert runs[1].wait(60) == 0
        stopped = runs[1].summary.delivered("kafka")
        top.wait_screen("2 up", timeout=30)
        # a frame is drawn line by line: wait for one whose row of the stopped replica is there
        screen = wait_for("the stopped replica's row", lambda: (
            s if replica_row(s := top.screen(), runs[1].metrics_port) else None), 30, 0.2)
        row = replica_row(screen, runs[1].metrics_port)
        assert row[1].startswith("down") and row[3] == f"{stopped:,} *", row
        assert "a down replica's last numbers" in "\n".join(screen)

        for r in (runs[0], runs[2]):
            r.signal(signal.SIGTERM)
        for r in (runs[0], runs[2]):
            assert r.wait(60) == 0
        total = sum(r.summary.delivered("kafka") for r in runs)
        produced = sum(r.summary.produced for r in runs)

        def merged_done():  # every replica's last answer: its final numbers
            screen = top.screen()
            rows = view_rows(screen, "outputs")
            done = "kafka" in rows and number(rows["kafka"][1]) == total
            return screen if done and "0 up" in "\n".join(screen) else None

        try:
            screen = wait_for("the merged view at the replicas' totals", merged_done, 30, 0.3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; expected {total} delivered, the screen:\n"
                                 + "\n".join(top.screen())) from None
        inputs = view_rows(screen, "inputs")
        assert number(inputs["rate-0"][4]) == produced
        for r in runs:
            row = replica_row(screen, r.metrics_port)
            assert row[3] == f"{r.summary.delivered('kafka'):,} *", row
        top.signal(signal.SIGINT)
        assert top.wait(30) == 0
        assert len(read_topic(kafka_bootstrap, topic)) == total
    finally:
        for r in runs:
            r.kill()
        if top is not None and top.proc.poll() is None:
            top.proc.kill()


def test_dns_names_expand_to_every_address_and_a_gone_name_to_none():
    def resolve(name, port, type):
        if name == "gone":
            raise socket.gaierror("no such name")
        return [(0, 0, 0, "", (a, port)) for a in ("10.0.0.2", "10.0.0.1", "10.0.0.2", "fd00::1")]

    found = targets(["dns://pods.ns.svc:9464", "dns://gone:1", "host:9", "https://x/m"],
                    resolve=resolve)
    assert found == ["http://10.0.0.1:9464/metrics", "http://10.0.0.2:9464/metrics",
                     "http://[fd00::1]:9464/metrics", "http://host:9/metrics", "https://x/m"]


@pytest.mark.parametrize("args, says", [
    ((), "name at least one replica"),
    (("ftp://x",), "not an http(s) URL"),
    (("dns://name",), "needs a name and a port"),
    (("--file", "missing.txt"), "--file missing.txt: cannot read it"),
    (("--file", "bad.txt"), "--file bad.txt, line 2: not a URL"),
    (("--file", "binary.txt"), "--file binary.txt: cannot read it"),
    (("x:1", "--interval", "0"), "must be greater than 0"),
    (("x:1", "--count", "0"), "--count must be at least 1"),
])
def test_bad_sources_are_usage_errors(tmp_path, args, says):
    (tmp_path / "bad.txt").write_text("http://a:1\nhttp://b:2 and more\n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00garbage")
    result = run_cli("top", *args, cwd=tmp_path)
    assert result.code == 2 and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_replica_that_answers_garbage_or_nothing_is_down(tmp_path):
    import http.server
    import threading

    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"connector_events_delivered_total{output=\x00 not prometheus\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, never answers: the timeout
    try:
        result = run_cli("top", f"127.0.0.1:{server.server_port}",
                         f"127.0.0.1:{silent.getsockname()[1]}", "--once", "--timeout", "0.5",
                         env={"COLUMNS": "200", **__import__("os").environ})
    finally:
        server.shutdown()
        silent.close()
    assert result.code == 1, result.stderr
    assert "0 up" in result.stdout and result.stdout.count("down (never up)") == 2
    assert "Traceback" not in result.stderr + result.stdout


def test_read_sources_skips_comments_and_blank_lines(tmp_path):
    (tmp_path / "u.txt").write_text("# fleet\n\nhttp://a:1  # first\nb:2\n")
    assert read_sources(["c:3"], tmp_path / "u.txt") == ["c:3", "http://a:1", "b:2"]


def test_a_replica_that_restarted_counters_from_zero_draws_no_negative_rate():
    page = ("connector_timestamps_total{{input=\"in\"}} {n}\n"
            "connector_events_produced_total{{input=\"in\"}} {n}\n"
            "connector_events_delivered_total{{output=\"out\"}} {n}\n")
    fleet = Fleet(["127.0.0.1:1"])
    replica = fleet.replicas.setdefault("r", Replica("r"))
    for t, n in ((0, 0), (1, 5000), (2, 10)):  # restarted between 1 and 2
        replica.page, replica.up = parse(page.format(n=n)), True
        merged, parts = fleet.stats()
        replica.samples.add(Sample.of(float(t), parts[0]))
        fleet.merged.add(Sample.of(float(t), merged))
    out = io.StringIO()
    Console(file=out, width=200).print(frame(fleet))
    fleet.close()
    lines = out.getvalue().splitlines()
    assert view_rows(lines, "replicas")["r"][6] == "0", lines
    assert view_rows(lines, "inputs")["in"][2] == "0", lines
