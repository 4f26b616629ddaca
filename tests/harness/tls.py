"""TLS material for tests: the same CA and certificates `scripts/local-kafka start --secure`
makes (scripts/local_kafka_secure.py), in a folder of the test's own. ca.pem signs
broker.pem (SAN 127.0.0.1, localhost: a server's), client.pem and expired-client.pem;
other-ca.pem signs other-ca-client.pem. Keys are beside them (NAME.key)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local_kafka_secure.py"


def make_certificates(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("local_kafka_secure", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_pki(Path(folder))
    return Path(folder)
