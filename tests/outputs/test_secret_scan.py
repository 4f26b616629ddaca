"""No secret leaks anywhere a run writes: the secured matrix (Kafka over SASL_SSL with
SCRAM-SHA-512 and PLAIN, and mTLS; transactions with --checkpoint; events that fail and are
dead-lettered; an OTLP export with a bearer token) runs at --log-level debug with
librdkafka's own debug lines on, and stderr, stdout, the dead letters, /metrics and the
checkpoint are searched for the password, the token and every line of the private key."""

from __future__ import annotations

import http.server
import threading
import uuid
from pathlib import Path

import pytest
import yaml

from connector.testing import free_port
from tests.harness.cli import Run, no_traceback
from tests.harness.kafka import create_topic, read_topic

pytestmark = pytest.mark.timeout(300)

# half the events carry `route` (a {route} topic), half do not: those fail and are
# dead-lettered with the producer settings around them
SCRIPT = """
import json
def produce(params):
    n = int(params["timestamp"].timestamp())
    span = {"trace_id": f"{n:032x}", "span_id": f"{n:016x}", "service": "s",
            "operation": "o", "start_time": params["timestamp"].isoformat(),
            "duration_ms": 1}
    if n % 2:
        span["route"] = "ok"
    return json.dumps(span)
"""
TOKEN = "tok-" + uuid.uuid4().hex


def _otlp_server(seen: list[str]):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _rendered_chart(config: Path) -> str:
    """The chart deploying the matrix's config, its credentials from existing Secrets."""
    try:
        import helm_python
    except ImportError as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"helm-python-sdk is missing ({exc}): pip install -e '.[test]'")
    from tests.harness.cli import ROOT

    values = {"config": yaml.safe_load(config.read_text()),
              "secrets": [{"env": "KAFKA_PASSWORD", "existingSecret": "kafka", "key": "pw"},
                          {"env": "OTLP_TOKEN", "existingSecret": "tempo", "key": "token"}],
              "tls": {"existingSecret": "kafka-tls"},
              "scripts": {"s.py": (config.parent / "s.py").read_text()}}
    rendered = helm_python.Chart.load(ROOT / "charts" / "connector").render(
        values, name="rel", namespace="load")
    text = "\n".join(rendered.values())
    assert "${KAFKA_PASSWORD}" in text and "secretKeyRef" in text
    return text


def _secrets(secure) -> list[str]:
    key_lines = [line for line in Path(secure.file("client.key")).read_text().splitlines()
                 if line and not line.startswith("-----")]
    assert len(key_lines) > 10
    return [secure.password, TOKEN, *key_lines]


def test_no_secret_in_any_output_of_a_debug_run_of_the_secured_matrix(secure_kafka, tmp_path):
    prefix = f"scan-{uuid.uuid4().hex[:6]}-"
    topics = {name: f"{prefix}{name}" for name in ("scram", "plain", "mtls", "tx")}
    for topic in topics.values():
        create_topic(secure_kafka.plaintext, topic)
    create_topic(secure_kafka.plaintext, f"{topics['plain']}-ok")
    (tmp_path / "s.py").write_text(SCRIPT)
    debug = {"debug": "security,broker,protocol"}

    def kafka(listener: str, topic: str, **more) -> dict:
        return {"kafka": {"bootstrap_servers": secure_kafka.address(listener), "topic": topic,
                          "connect_timeout": 30, "dead_letter": f"dead-{listener}.jsonl",
                          "producer": {**secure_kafka.producer(listener), **debug}, **more}}

    seen: list[str] = []
    server = _otlp_server(seen)
    outputs = [
        kafka("scram", topics["scram"]),
        kafka("plain", topics["plain"] + "-{route}"),  # the unrouted half is dead-lettered
        kafka("mtls", topics["mtls"]),
        {"otlp": {"endpoint": f"http://127.0.0.1:{server.server_port}",
                  "protocol": "http/protobuf",
                  "headers": {"Authorization": "Bearer ${OTLP_TOKEN}",
                              "X-Scope-OrgID": "team-a"}}},
    ]
    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:20Z"}
    config = tmp_path / "matrix.yaml"
    config.write_text(yaml.safe_dump({
        "mode": "backfill", "input": [{"rate": {"per_second": 1, **window}}],
        "event": {"script": {"path": "s.py"}}, "output": outputs}))
    (tmp_path / "tx").mkdir()
    (tmp_path / "tx" / "s.py").write_text(SCRIPT)
    tx = tmp_path / "tx" / "tx.yaml"
    tx.write_text(yaml.safe_dump({
        "mode": "backfill", "input": [{"rate": {"per_second": 1, **window}}],
        "event": {"script": {"path": "s.py"}},
        "output": [kafka("scram", topics["tx"], transactions={
            "id": f"{prefix}tx", "marker_topic": f"{prefix}marks"})]}))
    env = secure_kafka.env(OTLP_TOKEN=TOKEN)
    import os

    old = dict(os.environ)
    os.environ.update(env)  # Run takes the test's environment
    try:
        matrix = Run(tmp_path, config, "--log-level", "debug", "--linger", "10")
        metrics = matrix.metrics_after_summary()
        assert matrix.wait(60) == 1  # the unrouted events failed
        checkpoint = tmp_path / "ck.json"
        transactional = Run(tmp_path / "tx", tx, "--log-level", "debug", "--checkpoint",
                            str(checkpoint), metrics=False)
        assert transactional.wait(120) == 0, transactional.stderr[-3000:]
        tx_stderr = transactional.stderr
    finally:
        os.environ.clear()
        os.environ.update(old)
        server.shutdown()
    stderr = matrix.stderr
    no_traceback(stderr)
    numbers = matrix.summary.numbers("kafka-1")
    assert numbers["delivered"] == 10 and numbers["failed"] == 10, stderr[-3000:]
    for name in ("kafka-0", "kafka-2", "otlp-3"):
        assert matrix.summary.numbers(name)["delivered"] == 20, (name, stderr[-3000:])
    assert len(read_topic(secure_kafka.plaintext, topics["scram"])) == 20
    assert len(read_topic(secure_kafka.plaintext, topics["tx"], read_committed=True)) == 20
    assert seen and set(seen) == {f"Bearer {TOKEN}"}  # the token was sent...
    assert "sasl" in stderr.lower() and "ssl" in stderr.lower()  # librdkafka's debug is on

    places = {
        "rendered chart": _rendered_chart(config),
        "stderr": stderr + tx_stderr,
        "stdout": (tmp_path / "run.out").read_text(errors="replace")
        + (tmp_path / "tx" / "run.out").read_text(errors="replace"),
        "dead letters": "".join(p.read_text() for p in tmp_path.rglob("dead-*.jsonl")),
        "/metrics": repr(metrics),
        "checkpoint": checkpoint.read_text(),
    }
    assert places["dead letters"].count("\n") == 10
    for where, text in places.items():
        for secret in _secrets(secure_kafka):  # ...and is nowhere else
            assert secret not in text, f"a secret ({secret[:4]}...) is in the {where}"
