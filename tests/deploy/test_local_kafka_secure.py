"""Contract of `scripts/local-kafka start --secure`, on a broker of its own (own ports and
state folder): the KEY=VALUE lines, the certificates it makes, and the refusal of a state
folder formatted without --secure. What the listeners do is tested in
tests/outputs/kafka/test_secure_listeners.py (the `secure_kafka` fixture)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys

from connector.testing import free_port
from tests.harness.kafka import SCRIPT


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=300, env=os.environ | env)


def test_secure_start_prints_every_listener_and_refuses_a_plaintext_state(tmp_path):
    port = free_port(7)
    env = {"LOCAL_KAFKA_DIR": str(tmp_path / "k"), "LOCAL_KAFKA_PORT": str(port),
           "LOCAL_KAFKA_HEAP": "-Xms256m -Xmx512m"}
    try:
        plain = run("start", **env)
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.strip() == f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}"
        run("stop", **env)
        refused = run("start", "--secure", **env)
        assert refused.returncode == 1
        assert "formatted without --secure" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        run("stop", **env)
    env["LOCAL_KAFKA_DIR"] = str(tmp_path / "secure")
    try:
        r = run("start", "--secure", **env)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        values = dict(line.split("=", 1) for line in lines)
        assert lines[-1] == f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}"
        for offset, name in enumerate(("SCRAM", "PLAIN", "MTLS", "EXPIRED", "WRONGHOST"), 2):
            assert values[f"KAFKA_{name}_BOOTSTRAP"] == f"127.0.0.1:{port + offset}"
        assert values["KAFKA_SASL_USERNAME"] == "connector"
        assert len(values["KAFKA_SASL_PASSWORD"]) >= 20
        tls = tmp_path / "secure" / "tls"
        assert values["KAFKA_TLS_DIR"] == str(tls)
        assert (tls / "users.env").stat().st_mode & 0o077 == 0
        assert (tls / "client.key").stat().st_mode & 0o077 == 0
        # the broker's certificate lists 127.0.0.1 and localhost, signed by ca.pem
        cert = ssl._ssl._test_decode_cert(str(tls / "broker.pem"))
        assert ("IP Address", "127.0.0.1") in cert["subjectAltName"]
        assert ("DNS", "localhost") in cert["subjectAltName"]
        expired = ssl._ssl._test_decode_cert(str(tls / "expired-client.pem"))
        assert expired["notAfter"].startswith("Jan  2")
        # status says the same; a second start reuses the broker and its CA
        status = run("status", **env)
        assert dict(line.split("=", 1) for line in status.stdout.splitlines()[1:]) == values
        again = run("start", "--secure", **env)
        assert again.returncode == 0 and dict(
            line.split("=", 1) for line in again.stdout.splitlines()) == values
    finally:
        run("stop", **env)
