"""A secured broker of the test process's own (`scripts/local-kafka start --secure` on its
own ports and state folder, never the shared one): where its listeners are, its CA and
client certificates, its SASL user, and the producer settings for each listener."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from connector.testing import free_port
from tests.harness.kafka import PrivateKafka

HOW_TO = (
    "the secured broker is started by the tests (scripts/local-kafka start --secure with "
    "LOCAL_KAFKA_PORT and LOCAL_KAFKA_DIR of its own); it needs java, mvn and openssl"
)


@dataclass
class SecureKafka:
    """What `start --secure` printed: KAFKA_<LISTENER>_BOOTSTRAP, KAFKA_TLS_DIR, the user."""

    broker: PrivateKafka
    values: dict[str, str]

    @property
    def plaintext(self) -> str:
        return self.broker.bootstrap

    def address(self, listener: str) -> str:
        """scram, plain, mtls, expired (server cert), wronghost (server cert)."""
        return self.values[f"KAFKA_{listener.upper()}_BOOTSTRAP"]

    @property
    def tls(self) -> Path:
        return Path(self.values["KAFKA_TLS_DIR"])

    @property
    def username(self) -> str:
        return self.values["KAFKA_SASL_USERNAME"]

    @property
    def password(self) -> str:
        return self.values["KAFKA_SASL_PASSWORD"]

    def file(self, name: str) -> str:
        return str(self.tls / name)

    def producer(self, listener: str, password: str = "${KAFKA_PASSWORD}") -> dict[str, str]:
        """The producer settings that work on a listener; the password from the environment
        (`env()`), as a user's config takes it."""
        ca = {"ssl.ca.location": self.file("ca.pem")}
        if listener == "mtls":
            return {"security.protocol": "SSL", **ca,
                    "ssl.certificate.location": self.file("client.pem"),
                    "ssl.key.location": self.file("client.key")}
        mechanism = {"scram": "SCRAM-SHA-512", "plain": "PLAIN"}[listener]
        return {"security.protocol": "SASL_SSL", "sasl.mechanism": mechanism,
                "sasl.username": self.username, "sasl.password": password, **ca}

    def env(self, **more: str) -> dict[str, str]:
        """The run's environment: this one, and the password the configs name."""
        return {**os.environ, "KAFKA_PASSWORD": self.password, **more}

    def client(self, listener: str) -> dict[str, str]:
        """A test client's settings for a listener (password inline)."""
        return {"bootstrap.servers": self.address(listener),
                **self.producer(listener, self.password)}


def start_secure_kafka(state: Path) -> SecureKafka:
    broker = PrivateKafka(state, port=free_port(7))  # plaintext, controller, 5 secured
    broker.env["LOCAL_KAFKA_SECURE"] = "1"
    try:
        broker.start()
        status = broker._script("status")
    except Exception as exc:
        raise RuntimeError(f"no secured broker: {exc}\n{HOW_TO}") from exc
    values = dict(
        line.split("=", 1) for line in status.stdout.splitlines() if line.startswith("KAFKA_")
    )
    if "KAFKA_SCRAM_BOOTSTRAP" not in values:
        raise RuntimeError(f"scripts/local-kafka status printed no secured listeners\n{HOW_TO}")
    return SecureKafka(broker, values)
