"""The Schema Registry over TLS: rivven-schema serves plain HTTP only, so the tests put a
TLS-terminating proxy in front of the real registry (tests/harness/tls.py), with a
custom CA, and with mTLS; the records are read back and decoded against the registry."""

from __future__ import annotations

import json

import pytest
import yaml
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.harness.cli import no_traceback, run_cli
from tests.harness.kafka import read_topic
from tests.harness.tls import TlsProxy, make_certificates

SCRIPT = """
import json
def produce(params):
    return json.dumps({"n": int(params["timestamp"].timestamp()), "name": "x"})
"""
SCHEMA = {"type": "record", "name": "Tick", "fields": [
    {"name": "n", "type": "long"}, {"name": "name", "type": "string"}]}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _config(write, bootstrap: str, topic: str, registry: dict) -> str:
    write("s.py", SCRIPT)
    write("tick.avsc", json.dumps(SCHEMA))
    output = {"bootstrap_servers": bootstrap, "topic": topic, "schema_registry": registry,
              "value_schema": {"format": "avro", "path": "tick.avsc"}}
    config = {"mode": "backfill", "metrics": {"port": 0},
              "input": [{"rate": {"per_second": 1, "start": "2026-01-01T00:00:00Z",
                                  "end": "2026-01-01T00:00:10Z"}}],
              "event": {"script": {"path": "s.py"}}, "output": [{"kafka": output}]}
    return write("c.yaml", yaml.safe_dump(config))


@pytest.mark.parametrize("mtls", [False, True], ids=["tls", "mtls"])
def test_schemas_register_over_tls_and_records_decode(
    kafka_bootstrap, kafka_topic, schema_registry, certs, write, mtls
):
    host, port = schema_registry.removeprefix("http://").rsplit(":", 1)
    proxy = TlsProxy((host, int(port)), certs / "broker.pem", certs / "broker.key",
                     certs / "ca.pem" if mtls else None)
    try:
        topic = kafka_topic("tls-registry")
        tls = {"ca_file": str(certs / "ca.pem")}
        if mtls:
            tls |= {"cert_file": str(certs / "client.pem"), "key_file": str(certs / "client.key")}
        config = _config(write, kafka_bootstrap, topic, {"url": proxy.url, "tls": tls})
        result = run_cli("run", config, "--quiet")
        assert result.code == 0, result.stderr
        assert result.summary("kafka-0")["delivered"] == 10
        assert not proxy.handshake_errors
        client = SchemaRegistryClient({"url": schema_registry})
        decode = AvroDeserializer(client)
        records = [decode(m.value(), SerializationContext(topic, MessageField.VALUE))
                   for m in read_topic(kafka_bootstrap, topic)]
        assert sorted(r["n"] for r in records) == [1767225600 + i for i in range(10)]
    finally:
        proxy.close()


def test_a_registry_whose_ca_is_not_trusted_fails_clearly(
    kafka_bootstrap, kafka_topic, schema_registry, certs, write
):
    host, port = schema_registry.removeprefix("http://").rsplit(":", 1)
    proxy = TlsProxy((host, int(port)), certs / "broker.pem", certs / "broker.key")
    try:
        registry = {"url": proxy.url, "timeout": 3, "tls": {"ca_file": str(certs / "other-ca.pem")}}
        result = run_cli("run", _config(write, kafka_bootstrap, kafka_topic("bad-ca"), registry))
        assert result.code == 1, result.stderr
        no_traceback(result.stderr)
        assert "certificate verify failed" in result.stderr.lower(), result.stderr
    finally:
        proxy.close()
