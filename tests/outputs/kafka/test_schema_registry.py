"""Schema'd records (Avro, JSON Schema) through a real Schema Registry and a real broker.

Every record read back is checked by hand first (magic byte 0, the registered schema id),
then decoded with confluent-kafka's own deserializers against the same registry."""

import base64
import json
import os
import re
import time
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connector.outputs.kafka import schema as sch
from connector.testing import free_port
from tests.harness.cli import EXAMPLES, run_cli, start_run, wait_for
from tests.harness.kafka import read_topic
from tests.harness.metrics import http_status, scrape


def murmur2(data: bytes) -> int:
    """Kafka's Utils.murmur2 (what Java's DefaultPartitioner hashes keys with)."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = length % 4
    tail = data[length - rest :]
    if rest == 3:
        h ^= tail[2] << 16
    if rest >= 2:
        h ^= tail[1] << 8
    if rest >= 1:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def java_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_murmur2_matches_kafkas_published_values():
    # Values from Kafka's UtilsTest.testMurmur2 (signed ints there)
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829, b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
             b"abc": 479470107}
    for data, signed in cases.items():
        assert murmur2(data) == signed & 0xFFFFFFFF, data


def example_with_file_output(name: str, tmp_path: Path, topic: str, registry: str) -> Path:
    """The example's own config, its paths made absolute, with a file output beside the
    kafka one: the same events, as the script returned them, to compare with."""
    folder = EXAMPLES / name
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["event"]["script"]["path"] = str(folder / config["event"]["script"]["path"])
    kafka = config["output"][0]["kafka"]
    for key in ("value_schema", "key_schema"):
        if key in kafka:
            kafka[key]["path"] = str(folder / kafka[key]["path"])
    kafka["dead_letter"] = str(tmp_path / "dead.jsonl")
    config["output"].append({"file": {"path": str(tmp_path / "events.jsonl")}})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def env(bootstrap: str, registry: str, topic: str, **extra) -> dict:
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SCHEMA_REGISTRY_URL": registry,
            "TOPIC": topic, **extra}


def check_frame(value: bytes, schema_id: int) -> None:
    assert value[0] == 0, value[:8]
    assert int.from_bytes(value[1:5], "big") == schema_id, value[:8]


def test_avro_example_round_trips_with_typed_keys(kafka_bootstrap, kafka_topic, schema_registry, tmp_path):
    topic = kafka_topic("orders", partitions=3)
    config = example_with_file_output("kafka-avro", tmp_path, topic, schema_registry)
    result = run_cli("run", config, "--quiet", "--metrics-port", "0",
                     env=env(kafka_bootstrap, schema_registry, topic))
    assert result.code == 0, result.stderr
    sent = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert len(sent) == 300 and result.summary("kafka-0") == {
        "timestamps": 300, "produced": 300, "script_errors": 0, "delivered": 300, "failed": 0}

    client = SchemaRegistryClient({"url": schema_registry})
    value_id = client.get_latest_version(f"{topic}-value").schema_id
    key_id = client.get_latest_version(f"{topic}-key").schema_id
    values, keys = AvroDeserializer(client), AvroDeserializer(client)
    messages = read_topic(kafka_bootstrap, [topic])
    assert len(messages) == 300
    by_order = {e["order_id"]: e for e in sent}
    partitions = defaultdict(set)
    for msg in messages:
        check_frame(msg.value(), value_id)
        check_frame(msg.key(), key_id)
        record = values(msg.value(), SerializationContext(topic, MessageField.VALUE))
        key = keys(msg.key(), SerializationContext(topic, MessageField.KEY))
        event = by_order.pop(record["order_id"])
        assert record["created_at"] == datetime.fromisoformat(event["created_at"])
        assert {**record, "created_at": event["created_at"]} == event
        assert key == event["customer_id"]
        partitions[key].add(msg.partition())
        # Java's DefaultPartitioner: murmur2 of the serialized key bytes
        assert msg.partition() == java_partition(msg.key(), 3), key
    assert not by_order
    assert all(len(p) == 1 for p in partitions.values())


def test_json_schema_example_round_trips(kafka_bootstrap, kafka_topic, schema_registry, tmp_path):
    topic = kafka_topic("payments", partitions=3)
    config = example_with_file_output("kafka-json-schema", tmp_path, topic, schema_registry)
    result = run_cli("run", config, "--quiet", "--metrics-port", "0",
                     env=env(kafka_bootstrap, schema_registry, topic))
    assert result.code == 0, result.stderr
    sent = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert result.summary("kafka-0")["delivered"] == len(sent) == 150

    client = SchemaRegistryClient({"url": schema_registry})
    registered = client.get_latest_version(f"{topic}-value")
    schema_str = (EXAMPLES / "kafka-json-schema" / "schemas" / "payment.json").read_text()
    decode = JSONDeserializer(schema_str, schema_registry_client=client)
    messages = read_topic(kafka_bootstrap, [topic])
    by_id = {e["payment_id"]: e for e in sent}
    for msg in messages:
        check_frame(msg.value(), registered.schema_id)
        record = decode(msg.value(), SerializationContext(topic, MessageField.VALUE))
        assert record == by_id.pop(record["payment_id"])
        assert msg.key() == record["payment_id"].encode()
        assert msg.partition() == java_partition(msg.key(), 3)
    assert not by_id and len(messages) == 150


def test_raw_keys_land_where_java_puts_them(kafka_bootstrap, kafka_topic, write):
    topic = kafka_topic("raw", partitions=5)
    script = write("keys.py", """
        import json
        def produce(params):
            n = params['timestamp'].second
            return json.dumps({'user': f'user-{n % 17}', 'odd': 'é\\u00ff-' + 'k' * n, 'n': n})
    """)
    for field in ("user", "odd"):
        config = write(f"{field}.yaml", f"""
            mode: backfill
            input: [{{cron: {{expression: "* * * * * *", start: "2024-01-01T00:00:00Z", end: "2024-01-01T00:01:00Z"}}}}]
            event: {{script: {{path: {script}}}}}
            output: [{{kafka: {{bootstrap_servers: "{kafka_bootstrap}", topic: {topic}, key: {field}}}}}]
        """)
        result = run_cli("run", config, "--quiet", "--metrics-port", "0")
        assert result.code == 0, result.stderr
    messages = read_topic(kafka_bootstrap, [topic])
    assert len(messages) == 120
    assert len({m.partition() for m in messages}) > 1
    for msg in messages:
        assert msg.partition() == java_partition(msg.key(), 5), msg.key()


BAD_AVRO_SCRIPT = """
import json
def produce(params):
    n = params['timestamp'].second
    amount = 'lots' if n == 7 else n * 1.5
    return json.dumps({'id': f'e{n}', 'amount': amount, 'at': params['timestamp'].isoformat()})
"""
AVRO_SCHEMA = {"type": "record", "name": "Thing", "fields": [
    {"name": "id", "type": "string"}, {"name": "amount", "type": "double"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}


def bad_config(write, tmp_path, bootstrap, topic, registry, extra=""):
    write("thing.avsc", json.dumps(AVRO_SCHEMA))
    script = write("bad.py", BAD_AVRO_SCRIPT)
    return write("bad.yaml", f"""
        mode: backfill
        input: [{{cron: {{expression: "* * * * * *", start: "2024-01-01T00:00:00Z", end: "2024-01-01T00:00:20Z"}}}}]
        event: {{script: {{path: {script}}}}}
        output:
          - kafka:
              bootstrap_servers: "{bootstrap}"
              topic: {topic}
              schema_registry: {{url: "{registry}"{extra}}}
              value_schema: {{format: avro, path: thing.avsc}}
              dead_letter: {tmp_path / "dead.jsonl"}
    """)


def test_a_bad_event_fails_alone_and_is_dead_lettered(kafka_bootstrap, kafka_topic, schema_registry, write, tmp_path):
    topic = kafka_topic("bad")
    config = bad_config(write, tmp_path, kafka_bootstrap, topic, schema_registry)
    result = run_cli("run", config, "--metrics-port", "0")
    assert result.code == 1, result.stderr
    assert result.summary("kafka-0") == {"timestamps": 20, "produced": 20, "script_errors": 0,
                                         "delivered": 19, "failed": 1}
    assert f"failed: does not match schema {topic}-value: field 'amount': 1" in result.stderr
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(dead) == 1 and json.loads(dead[0]["value"])["id"] == "e7"
    assert "lots" in dead[0]["error"] and "amount" in dead[0]["error"]
    messages = read_topic(kafka_bootstrap, [topic])
    decode = AvroDeserializer(SchemaRegistryClient({"url": schema_registry}))
    ids = sorted(decode(m.value(), None)["id"] for m in messages)
    assert ids == sorted(f"e{n}" for n in range(20) if n != 7)

    # preview shows the same event would fail, sends nothing, exits 1
    preview = run_cli("preview", config, "--events", "10", "--at", "2024-01-01T00:00:07Z")
    assert preview.code == 1, preview.stderr
    assert "would fail: output[0].kafka: does not match schema" in preview.stderr
    assert "1 would not match a schema" in preview.stderr
    ok = run_cli("preview", config, "--events", "1", "--at", "2024-01-01T00:00:08Z")
    assert ok.code == 0 and "0 would not match a schema" in ok.stderr


def test_unreachable_registry_fails_after_its_timeout(kafka_bootstrap, kafka_topic, write, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # a port nobody listens on
    topic = kafka_topic("unreachable", create=False)
    config = bad_config(write, tmp_path, kafka_bootstrap, topic, url, extra=", timeout: 2")
    started = time.monotonic()
    result = run_cli("run", config, "--metrics-port", "0")
    took = time.monotonic() - started
    assert result.code == 1, result.stderr
    assert f"cannot reach the schema registry at {url} within 2s" in result.stderr
    assert "could not start" in result.stderr
    assert 2 <= took < 30


def test_registry_password_never_logged(kafka_bootstrap, kafka_topic, schema_registry, write, tmp_path):
    topic = kafka_topic("secret")
    config = bad_config(write, tmp_path, kafka_bootstrap, topic, schema_registry,
                        extra=', basic_auth: "${SR_USER}:${SR_PASSWORD}"')
    secret = "s3cr3t-Pa55word"
    result = run_cli("run", config, "--metrics-port", "0", "--log-level", "debug",
                     env={**os.environ, "SR_USER": "alice", "SR_PASSWORD": secret})
    assert result.code == 1 and result.summary("kafka-0")["delivered"] == 19, result.stderr
    assert secret not in result.stderr and secret not in result.stdout
    # and an unreachable registry whose URL carries the password
    url = f"http://alice:{secret}@127.0.0.1:1"
    config = bad_config(write, tmp_path, kafka_bootstrap, topic, url, extra=", timeout: 1")
    result = run_cli("run", config, "--metrics-port", "0", "--log-level", "debug")
    assert result.code == 1 and "cannot reach the schema registry" in result.stderr
    assert secret not in result.stderr


def test_validate_reports_an_incompatible_schema(kafka_topic, schema_registry, write, tmp_path):
    topic = kafka_topic("compat", create=False)
    client = SchemaRegistryClient({"url": schema_registry})
    v1 = {"type": "record", "name": "Order", "fields": [
        {"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}
    client.register_schema(f"{topic}-value", Schema(json.dumps(v1), "AVRO"))
    client.set_compatibility(f"{topic}-value", "BACKWARD")
    script = write("s.py", "def produce(params):\n    return '{}'\n")

    def validate(fields: list) -> object:
        write("order.avsc", json.dumps({**v1, "fields": fields}))
        config = write("v.yaml", f"""
            input: [{{cron: {{expression: "* * * * *"}}}}]
            event: {{script: {{path: {script}}}}}
            output:
              - kafka:
                  bootstrap_servers: 127.0.0.1:1
                  topic: {topic}
                  schema_registry: {{url: "{schema_registry}"}}
                  value_schema: {{format: avro, path: order.avsc}}
        """)
        return run_cli("validate", config)

    # a new field without a default: the new schema cannot read the old records
    result = validate([*v1["fields"], {"name": "currency", "type": "string"}])
    assert result.code == 2, result.stderr
    assert f"incompatible with the latest version of subject {topic}-value" in result.stderr
    assert "currency" in result.stderr
    # with a default it is compatible; so is dropping a field under BACKWARD (Avro's rules)
    assert validate([*v1["fields"], {"name": "currency", "type": "string", "default": "EUR"}]).code == 0
    assert validate(v1["fields"][:1]).code == 0
    # ...but not under FORWARD: old readers need the required field the new writer drops
    client.set_compatibility(f"{topic}-value", "FORWARD")
    result = validate(v1["fields"][:1])
    assert result.code == 2 and "amount" in result.stderr, result.stderr


def test_validate_names_a_schema_file_that_does_not_parse(write):
    script = write("s.py", "def produce(params):\n    return '{}'\n")
    for name, text, fmt, expect in [
        ("a.avsc", '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "strnig"}]}', "avro", "not a valid Avro schema"),
        ("b.avsc", '{"type": "record",', "avro", "not JSON"),
        ("c.json", '{"type": "objekt"}', "json_schema", "not a valid JSON Schema"),
        ("d.json", "", "json_schema", "empty schema file"),
        ("e.avsc", "5", "avro", "not a valid Avro schema"),
        ("f.avsc", b"\xff\xfe{", "avro", "cannot read schema file"),
    ]:
        if isinstance(text, bytes):  # not UTF-8
            write(name, "").write_bytes(text)
        else:
            write(name, text)
        config = write("v.yaml", f"""
            input: [{{cron: {{expression: "* * * * *"}}}}]
            event: {{script: {{path: {script}}}}}
            output:
              - kafka:
                  bootstrap_servers: 127.0.0.1:1
                  topic: t
                  schema_registry: {{url: "http://127.0.0.1:1"}}
                  value_schema: {{format: {fmt}, path: {name}}}
        """)
        result = run_cli("validate", config)
        assert result.code == 2, result.stderr
        assert expect in result.stderr and name in result.stderr and "value_schema" in result.stderr


# -- the wire bytes: ours == confluent-kafka's serializers' ----------------------------------
WIDE = {"type": "record", "name": "Wide", "namespace": "t", "fields": [
    {"name": "s", "type": "string"}, {"name": "i", "type": "int"}, {"name": "l", "type": "long"},
    {"name": "d", "type": "double"}, {"name": "f", "type": "float"}, {"name": "b", "type": "boolean"},
    {"name": "raw", "type": "bytes"},
    {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
    {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
    {"name": "u", "type": ["null", "string", "long"]},
    {"name": "ut", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
    {"name": "arr", "type": {"type": "array", "items": {"type": "record", "name": "In", "fields": [
        {"name": "x", "type": "bytes"}]}}},
    {"name": "m", "type": {"type": "map", "values": "long"}},
    {"name": "opt", "type": ["null", "string"], "default": None},
]}


def wide_records():
    when = datetime(2024, 2, 29, 23, 59, 58, 123000, tzinfo=UTC)
    for n, (u, ut) in enumerate([(None, None), ("text", when), (2**40, when)]):
        native = {"s": f"ü-{n}" * (n * 50 + 1), "i": -(2**31) + n, "l": 2**63 - 1 - n, "d": 1.5e300 * n,
                  "f": 0.25, "b": bool(n % 2), "raw": bytes(range(n * 40)), "fx": b"\x00\xffab",
                  "ms": when, "us": datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                  "day": date(2000, 1, n + 1), "e": "AB"[n % 2], "u": u, "ut": ut,
                  "arr": [{"x": b"\x01" * k} for k in range(n)], "m": {"k": n, "ñ": -n}}
        as_json = {**native, "raw": base64.b64encode(native["raw"]).decode(),
                   "fx": base64.b64encode(b"\x00\xffab").decode(),
                   "ms": "2024-02-29T23:59:58.123Z" if n else int(when.timestamp() * 1000),
                   "us": "1969-12-31T23:59:59.999999+00:00", "day": f"2000-01-0{n + 1}",
                   "ut": None if ut is None else "2024-02-29T23:59:58.123+00:00",
                   "arr": [{"x": base64.b64encode(b"\x01" * k).decode()} for k in range(n)]}
        yield native, json.loads(json.dumps(as_json))


def test_avro_bytes_equal_confluent_kafkas(kafka_topic, schema_registry):
    topic = kafka_topic("wire", create=False)
    client = SchemaRegistryClient({"url": schema_registry})
    text = json.dumps(WIDE)
    ours = sch.Serializer(sch.Loaded("avro", text, "wide"), f"{topic}-value",
                          client.register_schema(f"{topic}-value", Schema(text, "AVRO")))
    theirs = AvroSerializer(client, text)
    back = AvroDeserializer(client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    for native, as_json in wide_records():
        wire = ours.serialize(as_json)
        assert wire == theirs(native, ctx)
        check_frame(wire, ours.schema_id)
        assert back(wire, ctx)["raw"] == native["raw"]


def test_json_schema_bytes_equal_confluent_kafkas(kafka_topic, schema_registry):
    topic = kafka_topic("wirejson", create=False)
    client = SchemaRegistryClient({"url": schema_registry})
    text = (EXAMPLES / "kafka-json-schema" / "schemas" / "payment.json").read_text().strip()
    ours = sch.Serializer(sch.Loaded("json_schema", text, "p"), f"{topic}-value",
                          client.register_schema(f"{topic}-value", Schema(text, "JSON")))
    theirs = JSONSerializer(text, client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    for record in [{"payment_id": "p\u2028é\"x", "at": "2024-01-01T00:00:00Z", "method": "card",
                    "amount": {"value": 1e-7, "currency": "EUR"}, "tags": ["a" * 10_000]},
                   {"payment_id": "", "at": "x", "method": "wallet",
                    "amount": {"value": 12, "currency": "USD"}}]:
        assert ours.serialize(record) == theirs(record, ctx)


# -- hostile values: each one a schema mismatch with a bounded reason, never a crash ---------
@pytest.mark.parametrize("field, value, where", [
    ("s", 12, "s"), ("i", 2**31, "i"), ("l", 2**64, "l"), ("l", 1.5, "l"), ("d", "NaN", "d"),
    ("b", "true", "b"), ("raw", "not base64!", "raw"), ("raw", 123, "raw"), ("fx", "AAAA", "fx"),
    ("ms", "yesterday", "ms"), ("ms", True, "ms"), ("day", "2024-13-01", "day"), ("e", "C", "e"),
    ("u", 1.5, "u"), ("ut", "soon", "ut"), ("arr", [{"x": "%%"}], "arr.x"), ("m", {"k": "v"}, "m"),
    ("s", None, "s"), ("arr", "nope", "arr"),
])
def test_avro_mismatches_name_the_field(field, value, where):
    ours = sch.Serializer(sch.Loaded("avro", json.dumps(WIDE), "wide"), "things-value", 1)
    record = next(wide_records())[1]
    record[field] = value
    with pytest.raises(sch.Mismatch) as caught:
        ours.serialize(record)
    assert caught.value.reason == f"does not match schema things-value: field '{where}'"
    assert caught.value.detail and len(caught.value.detail) < 2100


def test_avro_hostile_events():
    ours = sch.Serializer(sch.Loaded("avro", json.dumps(WIDE), "wide"), "things-value", 1)
    record = next(wide_records())[1]
    for bad in ({**record, "extra": 1, "\udcff": 2}, [], "text", None, {}):
        with pytest.raises(sch.Mismatch) as caught:
            ours.serialize(bad)
        assert caught.value.reason.startswith("does not match schema things-value")
        assert "\udcff" not in caught.value.reason and "extra" not in caught.value.reason
    huge = {**record, "s": "x" * 5_000_000, "raw": base64.b64encode(os.urandom(1_000_000)).decode()}
    wire = ours.serialize(huge)
    assert len(wire) > 6_000_000 and wire[:5] == b"\x00\x00\x00\x00\x01"


def test_a_json_schema_ref_is_never_fetched():
    ours = sch.Serializer(sch.Loaded("json_schema", '{"$ref": "http://127.0.0.1:1/x.json"}', "j"), "r-value", 1)
    with pytest.raises(sch.Mismatch) as caught:
        ours.serialize({"a": 1})
    assert caught.value.reason == "does not match schema r-value: the schema cannot be applied"
    assert "127.0.0.1:1" in caught.value.detail


def test_json_schema_mismatch_reason_is_bounded():
    text = (EXAMPLES / "kafka-json-schema" / "schemas" / "payment.json").read_text()
    ours = sch.Serializer(sch.Loaded("json_schema", text, "p"), "pay-value", 9)
    good = {"payment_id": "p", "at": "t", "method": "card", "amount": {"value": 1, "currency": "EUR"}}
    cases = [({**good, "amount": {"value": -1, "currency": "EUR"}}, "amount.value"),
             ({**good, "amount": {"value": 1}}, "amount.currency"),
             ({**good, "method": "cash"}, "method"),
             ({**good, "x" * 1000: 1}, ""),
             ({k: v for k, v in good.items() if k != "at"}, "at"),
             ("text", "")]
    for value, where in cases:
        with pytest.raises(sch.Mismatch) as caught:
            ours.serialize(value)
        expect = "does not match schema pay-value" + (f": field '{where}'" if where else "")
        assert caught.value.reason == expect, (value, caught.value.detail)


def test_decimal_schemas_take_fastavros_path_with_the_same_bytes(kafka_topic, schema_registry):
    from decimal import Decimal

    topic = kafka_topic("decimal", create=False)
    client = SchemaRegistryClient({"url": schema_registry})
    text = json.dumps({"type": "record", "name": "Price", "fields": [
        {"name": "id", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]})
    ours = sch.Serializer(sch.Loaded("avro", text, "price"), f"{topic}-value",
                          client.register_schema(f"{topic}-value", Schema(text, "AVRO")))
    assert ours.serialize.__name__ == "_fastavro"
    theirs = AvroSerializer(client, text)
    ctx = SerializationContext(topic, MessageField.VALUE)
    for amount in ("12.34", "-0.01", "9999999.99"):
        native = {"id": "x", "amount": Decimal(amount), "at": datetime(2024, 5, 1, tzinfo=UTC)}
        as_json = {"id": "x", "amount": amount, "at": "2024-05-01T00:00:00Z"}
        assert ours.serialize(as_json) == theirs(native, ctx)
    for bad, where in (({"id": "x", "amount": "lots", "at": 0}, "amount"),
                       ({"id": 1, "amount": "1.00", "at": 0}, "id"),
                       ({"id": "x", "amount": "1.00", "at": 0, "more": 1}, None)):
        with pytest.raises(sch.Mismatch) as caught:
            ours.serialize(bad)
        assert caught.value.reason == f"does not match schema {topic}-value" + (
            f": field '{where}'" if where else ": unknown field")


def test_auto_register_false_uses_the_latest_registered_version(kafka_bootstrap, kafka_topic, schema_registry, write, tmp_path):
    topic = kafka_topic("latest")
    client = SchemaRegistryClient({"url": schema_registry})
    # registered: the schema with one more optional field than the file
    registered = {**AVRO_SCHEMA, "fields": [*AVRO_SCHEMA["fields"],
                                            {"name": "note", "type": ["null", "string"], "default": None}]}
    subject = f"{topic}-Thing"  # topic_record: TOPIC-RECORD NAME
    schema_id = client.register_schema(subject, Schema(json.dumps(registered), "AVRO"))
    config = bad_config(write, tmp_path, kafka_bootstrap, topic, schema_registry)
    text = config.read_text().replace("value_schema:", "subject_name_strategy: topic_record\n      auto_register: false\n      value_schema:")
    config.write_text(text)
    result = run_cli("run", config, "--metrics-port", "0")
    assert result.summary("kafka-0")["delivered"] == 19, result.stderr
    assert [v.version for v in [client.get_latest_version(subject)]] == [1]  # nothing registered
    decode = AvroDeserializer(client)
    for msg in read_topic(kafka_bootstrap, [topic]):
        check_frame(msg.value(), schema_id)
        assert decode(msg.value(), None)["note"] is None  # the default the registered one adds

    # a subject with nothing registered: exit 1 naming it, nothing sent
    config.write_text(text.replace("topic_record", "topic"))
    result = run_cli("run", config, "--metrics-port", "0")
    assert result.code == 1
    assert f"refused to find the latest version of subject {topic}-value" in result.stderr


def test_subject_name_strategies():
    loaded = sch.Loaded("avro", json.dumps({**AVRO_SCHEMA, "namespace": "a.b"}), "x")
    for strategy, expect in (("topic", "orders-value"), ("record", "a.b.Thing"),
                             ("topic_record", "orders-a.b.Thing")):
        config = type("C", (), {"subject_name_strategy": strategy, "topic": "orders"})
        assert sch.subject(config, "value", loaded) == expect
    titled = sch.Loaded("json_schema", '{"title": "Pay", "type": "object"}', "y")
    config = type("C", (), {"subject_name_strategy": "record", "topic": "t"})
    assert sch.subject(config, "key", titled) == "Pay"


@pytest.mark.parametrize("output, error", [
    ("{kafka: {bootstrap_servers: x, topic: t, value_schema: {format: avro, path: s.avsc}}}", "need schema_registry"),
    ("{kafka: {bootstrap_servers: x, topic: t, schema_registry: {url: 'http://r'}}}", "needs value_schema"),
    ("{kafka: {bootstrap_servers: x, topic: t, schema_registry: {url: 'ftp://r'}, value_schema: {format: avro, path: s.avsc}}}", "not an http"),
    ("{kafka: {bootstrap_servers: x, topic: 't.{f}', schema_registry: {url: 'http://r'}, value_schema: {format: avro, path: s.avsc}}}", "subject_name_strategy: record"),
    ("{kafka: {bootstrap_servers: x, topic: t, schema_registry: {url: 'http://r'}, key_schema: {format: avro, path: s.avsc}}}", "key_schema needs key"),
    ("{kafka: {bootstrap_servers: x, topic: t, schema_registry: {url: 'http://r', basic_auth: nocolon}, value_schema: {format: avro, path: s.avsc}}}", "USER:PASSWORD"),
    ("{kafka: {bootstrap_servers: x, topic: t, schema_registry: {url: 'http://r'}, value_schema: {format: thrift, path: s.avsc}}}", "value_schema.format"),
    ("{kafka: {bootstrap_servers: x, topic: t, schema_registry: {url: 'http://r'}, value_schema: {format: avro, path: missing.avsc}}}", "cannot read schema file"),
    ("{kafka: {bootstrap_servers: x, topic: t, encoding: otlp_json, schema_registry: {url: 'http://r'}, value_schema: {format: avro, path: s.avsc}}}", "writes OTLP"),
])
def test_schema_keys_are_checked_together(write, output, error):
    write("s.avsc", json.dumps(AVRO_SCHEMA))
    script = write("s.py", "def produce(params):\n    return '{}'\n")
    config = write("c.yaml", f"""
        input: [{{cron: {{expression: "* * * * *"}}}}]
        event: {{script: {{path: {script}}}}}
        output: [{output}]
    """)
    result = run_cli("validate", config)
    assert result.code == 2 and error in result.stderr, result.stderr


HOSTILE_SCRIPT = r"""
import json
def produce(params):
    n = params['timestamp'].second
    good = {'id': f'e{n}', 'amount': 1.5, 'at': n}
    return [
        json.dumps(good),
        'not json {',
        '[1, 2]',
        json.dumps({**good, 'id': 'x' * 2_000_000}),          # larger than message.max.bytes
        json.dumps({**good, 'amount': 10 ** 400}),  # JSON, read exactly: no double holds it
        json.dumps({**good, 'amount': 'NaN'}),
        json.dumps({**good, 'at': 'früh\u2028'}),
        json.dumps({**good, 'extra\u0000': 1}),
    ]
"""


def test_hostile_events_fail_alone_with_bounded_reasons(kafka_bootstrap, kafka_topic, schema_registry, write, tmp_path):
    topic = kafka_topic("hostile")
    config = bad_config(write, tmp_path, kafka_bootstrap, topic, schema_registry)
    write("bad.py", HOSTILE_SCRIPT)
    config.write_text(config.read_text().replace("00:00:20Z", "00:00:03Z"))
    result = run_cli("run", config, "--metrics-port", "0")
    assert result.code == 1
    summary = result.summary("kafka-0")
    assert summary["produced"] == 24 and summary["delivered"] == 3, result.stderr
    assert summary["delivered"] + summary["failed"] == summary["produced"]
    reasons = {line.strip() for line in result.stderr.splitlines() if line.strip().startswith("failed:")}
    subject = f"{topic}-value"
    assert reasons == {
        "failed: not JSON (needed for topic/key/header fields): 3",
        "failed: event is not a JSON object: 3",
        "failed: MSG_SIZE_TOO_LARGE: Broker: Message size too large: 3",
        f"failed: does not match schema {subject}: field 'amount': 6",
        f"failed: does not match schema {subject}: field 'at': 3",
        f"failed: does not match schema {subject}: unknown field: 3",
    }, reasons
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(dead) == 21
    too_large = [d for d in dead if "too large" in d["error"].lower()]
    assert len(too_large) == 3 and all(json.loads(d["value"])["id"] == "x" * 2_000_000 for d in too_large)
    assert len(read_topic(kafka_bootstrap, [topic])) == 3


def test_a_bad_events_accounts_agree_with_metrics(kafka_bootstrap, kafka_topic, schema_registry, write, tmp_path):
    topic = kafka_topic("metrics")
    config = bad_config(write, tmp_path, kafka_bootstrap, topic, schema_registry)
    port = free_port()
    proc = start_run(config, "--metrics-port", str(port), "--linger", "30")
    try:
        wait_for("/healthz to answer 503", lambda: http_status(port, "/healthz") == 503, 60)  # the run has ended
        after = scrape(port)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    reason = f"does not match schema {topic}-value: field 'amount'"
    assert after[("connector_events_delivered_total", (("output", "kafka-0"),))] == 19
    assert after[("connector_events_failed_total", (("output", "kafka-0"), ("reason", reason)))] == 1
    assert "delivered 19, failed 1" in err


def test_schemad_records_in_transactions(kafka_bootstrap, kafka_topic, schema_registry, write, tmp_path):
    # the transactional path sends the serialized record, never the event's JSON
    topic = kafka_topic("tx")
    config = bad_config(write, tmp_path, kafka_bootstrap, topic, schema_registry)
    text = config.read_text()
    indent = re.search(r"^( *)dead_letter:", text, re.M).group(1)
    config.write_text(text.replace(
        f"{indent}dead_letter:", f"{indent}transactions: {{id: tx-{topic}}}\n{indent}dead_letter:"))
    result = run_cli("run", config, "--metrics-port", "0")
    assert result.code == 1, result.stderr
    assert result.summary("kafka-0") == {"timestamps": 20, "produced": 20, "script_errors": 0,
                                         "delivered": 19, "failed": 1}
    assert "transactions: committed" in result.stderr
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(dead) == 1 and json.loads(dead[0]["value"])["id"] == "e7"
    value_id = SchemaRegistryClient({"url": schema_registry}).get_latest_version(
        f"{topic}-value").schema_id
    messages = read_topic(kafka_bootstrap, topic, read_committed=True)
    decode = AvroDeserializer(SchemaRegistryClient({"url": schema_registry}))
    for m in messages:
        check_frame(m.value(), value_id)
    ids = sorted(decode(m.value(), None)["id"] for m in messages)
    assert ids == sorted(f"e{n}" for n in range(20) if n != 7)
