"""What must fail on a secured broker, and how: each case exits 1 well within connect_timeout
(at once: these are not transient), names its cause in words a user acts on, and never
shows the password; the TLS files' own problems are config errors (exit 2). Against the
real secured broker of this test process (scripts/local-kafka start --secure)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from connector.outputs.kafka.security import files_problem
from tests.harness.cli import no_traceback, run_cli, run_clis

pytestmark = pytest.mark.timeout(240)
CONNECT_TIMEOUT = 60  # never reached: each case is told at once


def _config(write, address: str, producer: dict, name: str | None = None) -> str:
    write("s.py", "def produce(p):\n    return 'x'\n")
    output = {"bootstrap_servers": address, "topic": f"never-{uuid.uuid4().hex[:6]}",
              "connect_timeout": CONNECT_TIMEOUT, "producer": producer}
    config = {"mode": "backfill", "metrics": {"port": 0},
              "input": [{"rate": {"per_second": 1, "start": "2026-01-01T00:00:00Z",
                                  "end": "2026-01-01T00:00:02Z"}}],
              "event": {"script": {"path": "s.py"}}, "output": [{"kafka": output}]}
    return write(f"{name or uuid.uuid4().hex[:6]}.yaml", yaml.safe_dump(config))


def _cases(secure) -> dict[str, tuple[str, dict, list[str]]]:
    """name -> (listener address, producer settings, what stderr must say)."""
    scram, mtls = secure.producer("scram"), secure.producer("mtls")
    ca, other_ca = secure.file("ca.pem"), secure.file("other-ca.pem")
    tls_only = {"security.protocol": "SSL", "ssl.ca.location": ca}
    return {
        "wrong password": (secure.address("scram"), {**scram, "sasl.password": "not-it-${X:-}"},
                           ["authentication with Kafka at", "Authentication failed",
                            "invalid credentials"]),
        "mechanism the listener lacks": (
            secure.address("scram"), {**scram, "sasl.mechanism": "SCRAM-SHA-256"},
            ["authentication with Kafka at", "Unsupported SASL mechanism",
             "supported mechanisms: SCRAM-SHA-512"]),
        "untrusted CA": (secure.address("mtls"), {**mtls, "ssl.ca.location": other_ca},
                         ["TLS: certificate verify failed for Kafka at",
                          "not signed by a CA in the CA file",
                          f"CA file in use: ssl.ca.location {other_ca}"]),
        "hostname mismatch": (secure.address("wronghost"), tls_only,
                              ["TLS: certificate verify failed", "hostname mismatch",
                               "not valid for 127.0.0.1"]),
        "expired server certificate": (secure.address("expired"), tls_only,
                                       ["TLS: certificate verify failed",
                                        "the broker's certificate has expired"]),
        "expired client certificate": (
            secure.address("mtls"),
            {**mtls, "ssl.certificate.location": secure.file("expired-client.pem"),
             "ssl.key.location": secure.file("expired-client.key")},
            ["refused the client certificate", "expired-client.pem expired on 2020-01-02"]),
        "mTLS without a client certificate": (
            secure.address("mtls"), tls_only,
            ["refused the client certificate", "none is configured",
             "set ssl.certificate.location and ssl.key.location"]),
        "client certificate of another CA": (
            secure.address("mtls"),
            {**mtls, "ssl.certificate.location": secure.file("other-ca-client.pem"),
             "ssl.key.location": secure.file("other-ca-client.key")},
            ["refused the client certificate", "not signed by a CA the broker trusts"]),
        "plaintext to a TLS port": (secure.address("mtls"), {},
                                    ["protocol mismatch", "speaks TLS",
                                     "set security.protocol to SSL"]),
        "SASL_PLAINTEXT to a SASL_SSL port": (
            secure.address("scram"), {**scram, "security.protocol": "SASL_PLAINTEXT"},
            ["protocol mismatch", "speaks TLS"]),
        "TLS to a plaintext port": (secure.plaintext, tls_only,
                                    ["protocol mismatch", "speaks plaintext",
                                     "security.protocol is SSL"]),
    }


def test_each_secured_failure_exits_1_at_once_naming_its_cause(secure_kafka, write):
    cases = _cases(secure_kafka)
    configs = {name: _config(write, address, producer, f"case-{i}")
               for i, (name, (address, producer, _says)) in enumerate(cases.items())}
    results = run_clis(*(("run", configs[name], "--log-level", "debug") for name in cases),
                       env=secure_kafka.env(X="x"), timeout=CONNECT_TIMEOUT + 60)
    for (name, (_address, _producer, says)), result in zip(cases.items(), results,
                                                           strict=True):
        assert result.code == 1, (name, result.stderr[-3000:])
        no_traceback(result.stderr)
        for words in says:
            assert words in result.stderr, (name, words, result.stderr[-3000:])
        # said before the deadline: waiting out connect_timeout says "cannot reach"
        assert "cannot reach Kafka" not in result.stderr, name
        assert secure_kafka.password not in result.stderr + result.stdout, name


def test_under_workers_the_cause_is_said_once(secure_kafka, write):
    config = _config(write, secure_kafka.address("wronghost"), {
        "security.protocol": "SSL", "ssl.ca.location": secure_kafka.file("ca.pem")})
    result = run_cli("run", config, "--workers", "2", env=secure_kafka.env())
    assert result.code == 1, result.stderr
    no_traceback(result.stderr)
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "hostname mismatch" in errors[0], result.stderr
    # the ERROR line and the summary's; librdkafka's own lines stay at debug
    assert result.stderr.count("hostname mismatch") == 2, result.stderr
    assert "certificate verify failed: broker certificate" not in result.stderr


@pytest.mark.parametrize("setting, path, says", [
    ("ssl.key.location", "missing.key", "does not exist"),
    ("ssl.key.location", "a-folder", "is not a file"),
    ("ssl.certificate.location", "missing.pem", "does not exist"),
    ("ssl.ca.location", "missing-ca.pem", "does not exist"),
])
def test_an_unreadable_tls_file_is_a_config_error(secure_kafka, write, tmp_path, setting,
                                                  path, says):
    (tmp_path / "a-folder").mkdir(exist_ok=True)
    producer = {**secure_kafka.producer("mtls"), setting: str(tmp_path / path)}
    config = _config(write, secure_kafka.address("mtls"), producer)
    for command in ("run", "validate"):
        result = run_cli(command, config, env=secure_kafka.env())
        assert result.code == 2, result.stderr
        no_traceback(result.stderr)
        assert setting in result.stderr and says in result.stderr, result.stderr


def test_a_key_that_is_not_the_certificates_fails_at_start(secure_kafka, write):
    """A wrong credential, like a wrong password: the output cannot start (exit 1), named,
    without its secrets."""
    producer = {**secure_kafka.producer("mtls"),
                "ssl.key.location": secure_kafka.file("expired-client.key")}
    result = run_cli("run", _config(write, secure_kafka.address("mtls"), producer),
                     env=secure_kafka.env())
    assert result.code == 1, result.stderr
    no_traceback(result.stderr)
    assert "is not the private key of ssl.certificate.location" in result.stderr
    assert "client.pem" in result.stderr and "key values mismatch" in result.stderr
    assert "PRIVATE KEY" not in result.stderr


def test_an_unknown_scram_mechanism_is_a_config_error(secure_kafka, write):
    producer = {**secure_kafka.producer("scram"), "sasl.mechanism": "SCRAM-SHA-1024"}
    result = run_cli("validate", _config(write, secure_kafka.address("scram"), producer),
                     env=secure_kafka.env())
    assert result.code == 2, result.stderr
    assert "SCRAM-SHA-1024" in result.stderr and "try SCRAM-SHA-512" in result.stderr
    assert secure_kafka.password not in result.stderr


def test_a_key_without_read_permission_is_a_config_error(secure_kafka):
    """A key file mode 000: run as a user other than its owner (root reads anything, so the
    run is made as nobody then), `validate` and `run` exit 2 naming the setting and why."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="secure-perm-"))  # /tmp: nobody may enter it
    try:
        folder.chmod(0o755)
        for name in ("client.pem", "client.key", "ca.pem"):
            shutil.copy(secure_kafka.file(name), folder / name)
        producer = {**secure_kafka.producer("mtls"),
                    **{k: str(folder / Path(v).name) for k, v in
                       secure_kafka.producer("mtls").items() if k.endswith("location")}}
        (folder / "s.py").write_text("def produce(p):\n    return 'x'\n")
        config = folder / "c.yaml"
        config.write_text(yaml.safe_dump({
            "input": [{"rate": {"per_second": 1}}], "event": {"script": {"path": "s.py"}},
            "output": [{"kafka": {"bootstrap_servers": secure_kafka.address("mtls"),
                                  "topic": "t", "producer": producer}}]}))
        for p in folder.iterdir():  # readable by all, but the key: by nobody
            p.chmod(0o000 if p.name == "client.key" else 0o644)
        as_other = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if (
            os.geteuid() == 0) else []
        for command in ("validate", "run"):
            result = subprocess.run(
                [*as_other, sys.executable, "-m", "connector", command, str(config),
                 *(["--metrics-port", "0"] if command == "run" else [])],
                capture_output=True, text=True, timeout=120, cwd=folder,
                env={**os.environ, "HOME": str(folder)})
            assert result.returncode == 2, result.stderr
            assert "Traceback" not in result.stderr
            assert (f"ssl.key.location: cannot read {folder / 'client.key'} (Permission "
                    "denied); check its permissions") in result.stderr, result.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_permission_check_reads_the_file_as_the_client_would(tmp_path, monkeypatch):
    """The same refusal made by open() (a filesystem whose permission bits say little)."""
    import builtins

    key = tmp_path / "client.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    real_open = builtins.open

    def refusing(path, *args, **kwargs):
        if str(path) == str(key):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing)
    problem = files_problem({"ssl.key.location": str(key)})
    assert problem == (f"ssl.key.location: cannot read {key} (Permission denied); "
                       "check its permissions")
