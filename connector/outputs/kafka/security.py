"""Why a secured connection to Kafka failed, in words a user acts on.

librdkafka retries a TLS failure forever and names it generically ("certificate verify
failed", "alert bad certificate", a plain disconnect), so start() would wait its whole
connect_timeout and then blame reachability. Here the client's errors are read once, and
where they say TLS went wrong a short handshake of our own (Python's ssl, the same CA
file) finds the cause: an unknown CA, an expired certificate, a host name the certificate
does not list, a client certificate the broker refused, or a protocol mismatch (TLS
spoken to a plaintext port, or the reverse). Nothing here runs per event.

`files_problem` is the config-time half: the TLS files must be readable files.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError

from connector.outputs.kafka.client_log import strip
from connector.tls_check import server_problem, speaks_tls

__all__ = ["Diagnosis", "creation_problem", "files_problem"]

_FILES = ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location")
# TLS alerts a broker sends when it refuses the client's certificate (or its absence)
_REFUSED = ("alert bad certificate", "alert certificate unknown", "alert certificate required",
            "alert unknown ca", "alert certificate expired", "alert handshake failure")
_TLS_PROTOCOLS = ("SSL", "SASL_SSL")
_PROBE_AFTER = 1.0  # a plaintext client that got no answer this long: is the port TLS?


def files_problem(producer: Mapping[str, Any]) -> str | None:
    """A TLS file setting that names no readable file (missing, a folder, no permission)."""
    for key in _FILES:
        path = producer.get(key)
        if not isinstance(path, str) or not path or path == "probe":
            continue
        if not os.path.exists(path):
            return f"{key}: {path} does not exist"
        if os.path.isdir(path) and key == "ssl.ca.location":
            continue  # librdkafka takes a folder of CA certificates too
        if not os.path.isfile(path):
            return f"{key}: {path} is not a file"
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as exc:
            return f"{key}: cannot read {path} ({exc.strerror}); check its permissions"
    return None


def key_mismatch(message: str) -> bool:
    """librdkafka refused the client key: it is not the certificate's (a wrong credential,
    like a wrong password, not a config error)."""
    return "key values mismatch" in message


def creation_problem(producer: Mapping[str, Any], message: str) -> str:
    """librdkafka's refusal to create a client, said with the files it concerns."""
    if key_mismatch(message):
        return (
            f"ssl.key.location ({producer.get('ssl.key.location')}) is not the private key of "
            f"ssl.certificate.location ({producer.get('ssl.certificate.location')}): "
            "key values mismatch"
        )
    return message


class Diagnosis:
    """Reads the client's errors while start() waits; `verdict()` is the message to fail
    with at once, or None while the failure may still be transient."""

    def __init__(self, servers: str, producer: Mapping[str, Any]):
        self.servers, self.producer = servers, producer
        self.protocol = str(producer.get("security.protocol", "PLAINTEXT")).upper()
        self.tls = self.protocol in _TLS_PROTOCOLS
        self.ca = producer.get("ssl.ca.location")
        self.cert = producer.get("ssl.certificate.location")
        self.seen: KafkaError | None = None  # the first error that says TLS went wrong
        self.refused = False  # connections were refused: nobody listens (not a mismatch)
        self.probes = 0  # handshakes of our own tried (a loaded machine may time one out)
        self._next_probe = _PROBE_AFTER

    def saw(self, err: KafkaError) -> None:
        """From the client's error callback (on poll()); keeps the first telling error."""
        text = err.str()
        if "Connection refused" in text:
            self.refused = True
        if self.seen is None and (
            err.code() == KafkaError._SSL
            or "PLAINTEXT broker listener" in text
            or any(alert in text for alert in _REFUSED)
        ):
            self.seen = err

    def verdict(self, waited: float) -> str | None:
        err = self.seen
        if err is not None:
            text = err.str()
            if "PLAINTEXT broker listener" in text:
                return self._mismatch("plaintext", "SSL/SASL_SSL")
            if "certificate verify failed" in text:
                return self._verify_failed()
            if any(alert in text for alert in _REFUSED):
                return self._client_refused(text)
            if err.code() == KafkaError._SSL:
                return f"TLS with Kafka at {self.servers} failed: {strip(text)}"
        if not self.tls and not self.refused and self.probes < 3 and waited >= self._next_probe:
            self.probes += 1
            self._next_probe = waited + _PROBE_AFTER * 2
            if speaks_tls(*self._first()):
                return self._mismatch("TLS", self.protocol)
        return None

    # -- the messages ---------------------------------------------------------------------
    def _mismatch(self, spoken: str, configured: str) -> str:
        if spoken == "TLS":
            fix = ("set security.protocol to SSL (or SASL_SSL) with ssl.ca.location, or use "
                   "the broker's plaintext port")
        else:
            fix = (f"security.protocol is {self.protocol} but this port speaks plaintext: use "
                   "PLAINTEXT (or SASL_PLAINTEXT), or the broker's TLS port")
        return (f"protocol mismatch: Kafka at {self.servers} speaks {spoken}, the client "
                f"{configured}; {fix}")

    def _verify_failed(self) -> str:
        ca = f"ssl.ca.location {self.ca}" if self.ca else "the system's CA store"
        cause = self._server_cause()
        return (f"TLS: certificate verify failed for Kafka at {self.servers}: {cause} "
                f"(CA file in use: {ca})")

    def _server_cause(self) -> str:
        host, port = self._first()
        algorithm = str(self.producer.get("ssl.endpoint.identification.algorithm", "https"))
        cause = server_problem(host, port, self.ca, algorithm.lower() == "https")
        return (cause or "the server's certificate could not be verified").replace(
            "the server's", "the broker's")

    def _client_refused(self, text: str) -> str:
        alert = next(a for a in _REFUSED if a in text)
        head = f"TLS: Kafka at {self.servers} refused the client certificate ({alert})"
        if not self.cert:
            return (f"{head}: none is configured and the broker requires one (mTLS); set "
                    "ssl.certificate.location and ssl.key.location")
        expires = _not_after(self.cert)
        if expires is not None and expires < time.time():
            return (f"{head}: ssl.certificate.location {self.cert} expired on "
                    f"{_date(expires)}; renew it")
        return (f"{head}: ssl.certificate.location {self.cert} is not signed by a CA the "
                "broker trusts, or the broker's checks refused it")

    def _first(self) -> tuple[str, int]:
        first = self.servers.split(",")[0].strip()
        first = first.split("://", 1)[-1]
        host, _, port = first.rpartition(":")
        return host.strip("[]") or first, int(port) if port.isdigit() else 9092


def _not_after(path: str) -> float | None:
    try:
        decoded = ssl._ssl._test_decode_cert(path)  # the stdlib's own PEM reader
        return ssl.cert_time_to_seconds(decoded["notAfter"])
    except (OSError, ValueError, KeyError, ssl.SSLError, AttributeError):
        return None


def _date(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
