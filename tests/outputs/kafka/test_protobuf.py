"""Protobuf records (format: protobuf) through the real Schema Registry and a real broker.

Every record read back is checked by hand first (magic byte 0, the registered schema id,
the message-index array), then decoded with confluent-kafka's ProtobufDeserializer and a
message class compiled here, independently, by grpcio-tools' protoc. The bytes are compared
with confluent-kafka's ProtobufSerializer where it can run: against confluent-kafka's own
mock registry, since the local registry refuses the serialized descriptors it registers."""

import base64
import json
import os
import re
from pathlib import Path

import pytest
import yaml
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
    MockSchemaRegistryClient,
)
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connector.outputs.kafka import schema as sch
from tests.harness.cli import EXAMPLES, run_cli
from tests.harness.kafka import read_topic
from tests.harness.protobuf import compile_here

WIDE = """
syntax = "proto3";
package t;
import "google/protobuf/timestamp.proto";

enum Color { COLOR_UNSPECIFIED = 0; RED = 1; GREEN = 2; NEG = -1; }

message Wide {
  message Inner { string s = 1; int32 n = 2; }
  string s = 1;
  int32 i32 = 2;
  int64 i64 = 3;
  uint32 u32 = 4;
  uint64 u64 = 5;
  sint32 s32 = 6;
  sint64 s64 = 7;
  fixed32 f32 = 8;
  fixed64 f64 = 9;
  sfixed32 sf32 = 10;
  sfixed64 sf64 = 11;
  double d = 12;
  float f = 13;
  bool b = 14;
  bytes raw = 15;
  Color color = 16;
  Inner inner = 17;
  repeated int64 nums = 18;
  repeated string words = 19;
  repeated Inner inners = 20;
  map<string, int32> counts = 21;
  map<int64, Inner> by_id = 22;
  google.protobuf.Timestamp at = 23;
  optional int32 opt = 24;
  oneof choice { string name = 25; int32 number = 26; Inner boxed = 27; }
  repeated Color colors = 28;
  double late = 40;
  string early = 30;
}

message Second { string id = 1; Wide.Inner inner = 2; }
"""


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wide")
    (folder / "wide.proto").write_text(WIDE)
    pool = compile_here(folder, "wide.proto")
    return folder / "wide.proto", pool


def serializer(path: Path, message: str | None = None, subject: str = "s", schema_id: int = 1):
    spec = sch.SchemaFile(format="protobuf", path=path, message=message)
    return sch.Serializer(sch.load(spec), subject, schema_id)


def cls_of(pool, name: str):
    return GetMessageClass(pool.FindMessageTypeByName(name))


FULL = {"s": "héllo", "i32": -7, "i64": -(2**63), "u32": 2**32 - 1, "u64": 2**64 - 1,
        "s32": -(2**31), "s64": 2**63 - 1, "f32": 7, "f64": 2**64 - 1, "sf32": -5, "sf64": -(2**63),
        "d": 1.25, "f": 0.5, "b": True, "raw": base64.b64encode(b"\x00\xffok").decode(),
        "color": "GREEN", "inner": {"s": "in", "n": 3}, "nums": [1, -1, 300],
        "words": ["a", ""], "inners": [{"s": "x"}, {}], "counts": {"k": 5},
        "by_id": {"-3": {"n": 1}}, "at": "2026-03-01T12:00:00.250Z", "opt": 0, "number": 0,
        "colors": ["RED", 2, -1], "late": -0.0, "early": "e"}


def confluent_bytes(pool, name: str, doc: dict, subject: str = "s") -> bytes:
    """What confluent-kafka's ProtobufSerializer writes for the same message."""
    cls = cls_of(pool, name)
    client = MockSchemaRegistryClient({"url": "mock://protobuf"})
    ser = ProtobufSerializer(cls, client, {"use.deprecated.format": False})
    message = json_format.ParseDict(doc, cls())
    return ser(message, SerializationContext(subject.removesuffix("-value"), MessageField.VALUE))


@pytest.mark.parametrize("name, message, doc, index", [
    ("t.Wide", None, FULL, b"\x00"),
    ("t.Wide", None, {}, b"\x00"),
    ("t.Wide", None, {"s": "", "i32": 0, "b": False, "color": 0, "name": ""}, b"\x00"),
    ("t.Second", "Second", {"id": "two", "inner": {"s": "n"}}, b"\x02\x02"),  # top-level [1]
    ("t.Wide.Inner", "t.Wide.Inner", {"s": "nested", "n": -1}, b"\x04\x00\x00"),  # [0, 0]
])
def test_bytes_equal_confluent_kafkas(wide, name, message, doc, index):
    path, pool = wide
    theirs = confluent_bytes(pool, name, doc)
    schema_id = int.from_bytes(theirs[1:5], "big")
    ours = serializer(path, message if message else "Wide", "s-value", schema_id).serialize(doc)
    assert ours[5 : 5 + len(index)] == index
    assert ours == theirs
    decoded = ProtobufDeserializer(cls_of(pool, name), {"use.deprecated.format": False})(ours, None)
    assert decoded == json_format.ParseDict(doc, cls_of(pool, name)())


def test_a_file_with_one_message_needs_no_message_key(tmp_path):
    (tmp_path / "one.proto").write_text('syntax = "proto3";\nmessage One { string a = 1; }\n')
    ser = serializer(tmp_path / "one.proto")
    assert ser.loaded.name == "One" and ser.serialize({"a": "x"}) == b"\x00\x00\x00\x00\x01\x00\n\x01x"


@pytest.mark.parametrize("doc, where", [
    ({"s": 5}, "s"), ({"i32": "5"}, "i32"), ({"i32": 2**31}, "i32"), ({"u32": -1}, "u32"),
    ({"i64": 2**63}, "i64"), ({"u64": 2**64}, "u64"), ({"i32": 1.5}, "i32"), ({"i32": True}, "i32"),
    ({"b": 1}, "b"), ({"b": "true"}, "b"), ({"d": "1.0"}, "d"), ({"d": False}, "d"),
    ({"f": 1e39}, "f"), ({"color": "BLUE"}, "color"), ({"color": 7}, "color"),
    ({"color": True}, "color"), ({"raw": "not base64!"}, "raw"), ({"inner": []}, "inner"),
    ({"inner": {"s": 1}}, "inner.s"), ({"inner": {"zz": 1}}, "inner"), ({"nums": 5}, "nums"),
    ({"nums": [1, "2"]}, "nums"), ({"inners": [None]}, "inners"), ({"counts": {"k": "v"}}, "counts"),
    ({"by_id": {"x": {}}}, "by_id"), ({"at": "yesterday"}, "at"), ({"at": 1.5}, "at"),
    ({"at": "0001-01-01T00:00:00Z", "s": 1}, "s"), ({"at": 10**17}, "at"),
    ({"name": "a", "number": 1}, "choice"), ({"s": "\ud800"}, "s"),
])
def test_mismatches_name_the_field(wide, doc, where):
    path, _ = wide
    with pytest.raises(sch.Mismatch) as err:
        serializer(path, "Wide", "subj").serialize(doc)
    assert err.value.reason == f"does not match schema subj: field '{where}'"
    assert err.value.detail


def test_unknown_fields_and_non_objects(wide):
    path, _ = wide
    ser = serializer(path, "Wide", "subj")
    with pytest.raises(sch.Mismatch) as err:
        ser.serialize({"s": "a", "secret_field": 1})
    assert err.value.reason == "does not match schema subj: unknown field"  # bounded
    assert "secret_field" in err.value.detail
    for value in ([], "x", 5, None):
        with pytest.raises(sch.Mismatch, match="does not match schema subj"):
            ser.serialize(value)
    # a key set to null is "not set", as Protobuf's JSON mapping reads it
    assert ser.serialize({"s": None, "inner": None}) == ser.serialize({})


def test_dead_letter_text_decodes_a_record(wide):
    path, _ = wide
    ser = serializer(path, "Wide", "subj")
    text = ser.text(ser.serialize({"s": "a", "color": "RED"}))
    assert json.loads(text) == {"s": "a", "color": "RED"}
    assert ser.text(b"\x00garbage") == "\x00garbage"


# -- hypothesis: accepted documents decode equal; refused ones name what was wrong ----------
def _ints(lo: int, hi: int):
    return st.integers(lo, hi - 1)


SCALARS = {
    "s": st.text(st.characters(exclude_categories=["Cs"]), max_size=8),
    "i32": _ints(-(2**31), 2**31), "i64": _ints(-(2**63), 2**63), "u32": _ints(0, 2**32),
    "u64": _ints(0, 2**64), "s32": _ints(-(2**31), 2**31), "s64": _ints(-(2**63), 2**63),
    "f32": _ints(0, 2**32), "f64": _ints(0, 2**64), "sf32": _ints(-(2**31), 2**31),
    "sf64": _ints(-(2**63), 2**63), "d": st.floats(allow_nan=False, allow_infinity=False),
    "b": st.booleans(), "raw": st.binary(max_size=6).map(lambda b: base64.b64encode(b).decode()),
    "color": st.sampled_from(["COLOR_UNSPECIFIED", "RED", "GREEN", "NEG", 0, 1, 2, -1]),
    "inner": st.fixed_dictionaries({}, optional={"s": st.text(max_size=3), "n": _ints(-9, 9)}),
    "nums": st.lists(_ints(-(2**63), 2**63), max_size=4),
    "counts": st.dictionaries(st.text(max_size=3), _ints(-(2**31), 2**31), max_size=3),
    "by_id": st.dictionaries(_ints(-(2**63), 2**63).map(str), st.just({"n": 1}), max_size=2),
    "at": st.one_of(_ints(-62_135_596_800_000, 253_402_300_800_000),
                    st.datetimes().map(lambda d: d.isoformat() + "Z")),
    "opt": _ints(-(2**31), 2**31),
    "colors": st.lists(st.sampled_from(["RED", 1, -1]), max_size=3),
}
WRONG = st.one_of(st.just("1"), st.just(1.5), st.just([]), st.just({"z": 1}), st.just(True),
                  st.just(2**64))


def _fits(key: str, value) -> bool:
    """Whether a value of the WRONG set happens to fit the field after all."""
    if key == "b":
        return value is True
    if key == "s":
        return value == "1"
    if key == "raw":
        return False
    if key in ("inner",):
        return False
    if key in ("nums", "colors"):
        return value == []
    if key == "counts":  # map<string, int32>
        return value == {"z": 1}
    if key == "by_id":  # map<int64, Inner>: "z" is no int64
        return False
    if key == "d":
        return value in (1.5, 2**64)
    if key in ("u64", "f64"):
        return value == 2**64 - 1
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.fixed_dictionaries({}, optional=SCALARS), wrong=st.one_of(st.none(), st.tuples(
    st.sampled_from(sorted(SCALARS)), WRONG)))
@example(doc={}, wrong=("counts", {"z": 1}))  # a "wrong" value that is a valid map
def test_property_accepted_decode_equal_refused_name_the_field(wide, doc, wrong):
    path, pool = wide
    ser = serializer(path, "Wide", "subj")
    cls = cls_of(pool, "t.Wide")
    if wrong is not None and not _fits(*wrong):
        key, value = wrong
        with pytest.raises(sch.Mismatch) as err:
            ser.serialize({**doc, key: value})
        reason = err.value.reason
        assert reason.startswith("does not match schema subj: field '" + key)
        return
    if wrong is not None:
        doc = {**doc, wrong[0]: wrong[1]}
    wire = ser.serialize(doc)
    assert wire[:6] == b"\x00\x00\x00\x00\x01\x00"
    decoded = cls.FromString(wire[6:])
    expected = json_format.ParseDict(_for_parse_dict(doc), cls())
    assert decoded == expected
    assert decoded.SerializeToString() == wire[6:] or doc.get("counts", {}).__len__() > 1 \
        or len(doc.get("by_id", {})) > 1  # map order aside, the bytes are upb's own


def _for_parse_dict(doc: dict) -> dict:
    """The JSON mapping's form of the same document (ParseDict: RFC 3339 times only)."""
    from datetime import UTC, datetime, timedelta

    out = dict(doc)
    if isinstance(out.get("at"), int):
        when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=out["at"])
        out["at"] = when.isoformat().replace("+00:00", "Z")
    return out


# -- through the CLI, against the real registry and broker ----------------------------------
def example_config(tmp_path: Path) -> Path:
    folder = EXAMPLES / "kafka-protobuf"
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["event"]["script"]["path"] = str(folder / config["event"]["script"]["path"])
    kafka = config["output"][0]["kafka"]
    kafka["value_schema"]["path"] = str(folder / kafka["value_schema"]["path"])
    kafka["dead_letter"] = str(tmp_path / "dead.jsonl")
    config["output"].append({"file": {"path": str(tmp_path / "events.jsonl")}})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def env(bootstrap: str, registry: str, topic: str) -> dict:
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SCHEMA_REGISTRY_URL": registry,
            "TOPIC": topic}


def test_example_round_trips_through_the_registry(kafka_bootstrap, kafka_topic, schema_registry, tmp_path):
    topic = kafka_topic("payments-pb", partitions=3)
    config = example_config(tmp_path)
    result = run_cli("run", config, "--quiet", "--metrics-port", "0",
                     env=env(kafka_bootstrap, schema_registry, topic))
    assert result.code == 0, result.stderr
    assert result.summary("kafka-0")["delivered"] == 300, result.stderr
    sent = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]

    client = SchemaRegistryClient({"url": schema_registry})
    registered = client.get_latest_version(f"{topic}-value")
    assert registered.schema.schema_type == "PROTOBUF"
    assert "message Payment" in registered.schema.schema_str  # the .proto text itself
    # the import registered under its own name (this registry keeps no references to show)
    money = client.get_latest_version("money.proto")
    assert money.schema.schema_str.strip() == (
        EXAMPLES / "kafka-protobuf/schemas/money.proto").read_text().strip()

    pool = compile_here(EXAMPLES / "kafka-protobuf" / "schemas", "payment.proto")
    cls = cls_of(pool, "shop.Payment")
    decode = ProtobufDeserializer(cls, {"use.deprecated.format": False})
    by_id = {e["payment_id"]: e for e in sent}
    messages = read_topic(kafka_bootstrap, [topic])
    assert len(messages) == 300
    methods = set()
    for msg in messages:
        value = msg.value()
        assert value[0] == 0 and int.from_bytes(value[1:5], "big") == registered.schema_id
        assert value[5] == 0  # the first message of the file: one 0 byte
        record = decode(value, SerializationContext(topic, MessageField.VALUE))
        event = by_id.pop(record.payment_id)
        assert record == json_format.ParseDict(event, cls())
        # field by field, the parts the example shows
        assert record.created_at.ToDatetime().isoformat() == event["created_at"][:19]
        assert shop_status(cls, record) == event["status"]
        assert [i.sku for i in record.items] == [i["sku"] for i in event["items"]]
        assert dict(record.labels) == event["labels"]
        assert record.total.units == event["total"]["units"]
        methods.add(record.WhichOneof("method"))
        assert msg.key() == str(event["customer_id"]).encode()
    assert not by_id
    assert methods == {"card_last4", "iban", "cash"}


def test_imports_are_registered_and_referenced():
    from connector.outputs.kafka.schema.proto_references import references

    client = MockSchemaRegistryClient({"url": "mock://refs"})
    spec = sch.SchemaFile(format="protobuf", path=EXAMPLES / "kafka-protobuf/schemas/payment.proto")
    loaded = sch.load(spec)
    refs = references(client, loaded, register=True)
    assert [(r.name, r.subject, r.version) for r in refs] == [("money.proto", "money.proto", 1)]
    assert references(client, loaded, register=False) == refs  # validate's: looked up only
    with pytest.raises(LookupError, match=r"money\.proto"):
        references(MockSchemaRegistryClient({"url": "mock://empty"}), loaded, register=False)


def shop_status(cls, record) -> str:
    return cls.DESCRIPTOR.fields_by_name["status"].enum_type.values_by_number[record.status].name


BAD_SCRIPT = """
import json
def produce(params):
    n = params['timestamp'].second
    amount = 'lots' if n == 7 else n * 3
    return json.dumps({'key': {'id': f'k{n % 3}'}, 'id': f'e{n}', 'amount': amount,
                       'at': params['timestamp'].isoformat()})
"""
THING = """
syntax = "proto3";
package things;
import "google/protobuf/timestamp.proto";
message Thing { Key key = 1; string id = 2; int64 amount = 3; google.protobuf.Timestamp at = 4; }
message Key { string id = 1; }
"""


def bad_config(write, tmp_path, bootstrap, topic, registry, extra=""):
    write("thing.proto", THING)
    script = write("bad.py", BAD_SCRIPT)
    return write("bad.yaml", f"""
        mode: backfill
        input: [{{cron: {{expression: "* * * * * *", start: "2024-01-01T00:00:00Z", end: "2024-01-01T00:00:20Z"}}}}]
        event: {{script: {{path: {script}}}}}
        output:
          - kafka:
              bootstrap_servers: "{bootstrap}"
              topic: {topic}
              key: key
              schema_registry: {{url: "{registry}"}}
              value_schema: {{format: protobuf, path: thing.proto, message: things.Thing}}
              key_schema: {{format: protobuf, path: thing.proto, message: Key}}
              dead_letter: {tmp_path / "dead.jsonl"}{extra}
    """)


def check_run(result, topic, bootstrap, registry, tmp_path, read_committed=False):
    assert result.code == 1, result.stderr
    assert result.summary("kafka-0") == {"timestamps": 20, "produced": 20, "script_errors": 0,
                                         "delivered": 19, "failed": 1}
    assert f"failed: does not match schema {topic}-value: field 'amount': 1" in result.stderr
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(dead) == 1 and json.loads(dead[0]["value"])["id"] == "e7"
    assert "lots" in dead[0]["error"]
    client = SchemaRegistryClient({"url": registry})
    value_id = client.get_latest_version(f"{topic}-value").schema_id
    key_id = client.get_latest_version(f"{topic}-key").schema_id
    pool = descriptor_pool.DescriptorPool()
    folder = tmp_path / "compiled"
    folder.mkdir(exist_ok=True)
    (folder / "thing.proto").write_text(THING)
    pool = compile_here(folder, "thing.proto")
    things, keys = cls_of(pool, "things.Thing"), cls_of(pool, "things.Key")
    messages = read_topic(bootstrap, topic, read_committed=read_committed)
    ids = []
    for m in messages:
        assert m.value()[:6] == b"\x00" + value_id.to_bytes(4, "big") + b"\x00"
        assert m.key()[:7] == b"\x00" + key_id.to_bytes(4, "big") + b"\x02\x02"  # index [1]
        thing = ProtobufDeserializer(things, {"use.deprecated.format": False})(m.value(), None)
        key = ProtobufDeserializer(keys, {"use.deprecated.format": False})(m.key(), None)
        n = int(thing.id[1:])
        assert thing.amount == n * 3 and key.id == f"k{n % 3}" and thing.key.id == key.id
        assert thing.at.seconds == 1704067200 + n
        ids.append(thing.id)
    assert sorted(ids) == sorted(f"e{n}" for n in range(20) if n != 7)


def test_a_bad_event_fails_alone_and_is_dead_lettered(kafka_bootstrap, kafka_topic, schema_registry, write, tmp_path):
    topic = kafka_topic("pb-bad")
    config = bad_config(write, tmp_path, kafka_bootstrap, topic, schema_registry)
    result = run_cli("run", config, "--metrics-port", "0")
    check_run(result, topic, kafka_bootstrap, schema_registry, tmp_path)

    preview = run_cli("preview", config, "--events", "10", "--at", "2024-01-01T00:00:07Z")
    assert preview.code == 1, preview.stderr
    assert "would fail: output[0].kafka: does not match schema" in preview.stderr
    assert "1 would not match a schema" in preview.stderr
    ok = run_cli("preview", config, "--events", "1", "--at", "2024-01-01T00:00:08Z")
    assert ok.code == 0 and "0 would not match a schema" in ok.stderr


def test_protobuf_records_in_transactions(kafka_bootstrap, kafka_topic, schema_registry, write, tmp_path):
    topic = kafka_topic("pb-tx")
    config = bad_config(write, tmp_path, kafka_bootstrap, topic, schema_registry,
                        extra=f"\n              transactions: {{id: tx-{topic}}}")
    result = run_cli("run", config, "--metrics-port", "0")
    assert "transactions: committed" in result.stderr
    check_run(result, topic, kafka_bootstrap, schema_registry, tmp_path, read_committed=True)


def test_validate_reports_an_incompatible_proto(kafka_topic, schema_registry, write):
    topic = kafka_topic("pb-compat", create=False)
    client = SchemaRegistryClient({"url": schema_registry})
    v1 = 'syntax = "proto3";\npackage c;\nmessage Order { string id = 1; double amount = 2; }\n'
    client.register_schema(f"{topic}-value", Schema(v1, "PROTOBUF"))
    client.set_compatibility(f"{topic}-value", "BACKWARD")
    script = write("s.py", "def produce(params):\n    return '{}'\n")

    def validate(text: str):
        write("order.proto", text)
        config = write("v.yaml", f"""
            input: [{{cron: {{expression: "* * * * *"}}}}]
            event: {{script: {{path: {script}}}}}
            output:
              - kafka:
                  bootstrap_servers: 127.0.0.1:1
                  topic: {topic}
                  schema_registry: {{url: "{schema_registry}"}}
                  value_schema: {{format: protobuf, path: order.proto}}
        """)
        return run_cli("validate", config)

    result = validate(v1.replace("double amount", "string amount"))
    assert result.code == 2, result.stderr
    assert f"incompatible with the latest version of subject {topic}-value" in result.stderr
    assert "amount" in result.stderr
    assert validate(v1.replace("}\n", " string note = 3; }\n")).code == 0


@pytest.mark.parametrize("files, message, expect", [
    ({"x.proto": 'syntax = "proto3";\nmessage X { strin a = 1; }\n'}, None, "x.proto:2"),
    ({"x.proto": 'syntax = "proto3";\nmessage X { string a = 1 }\n'}, None, "not a valid .proto"),
    ({"x.proto": 'syntax = "proto3";\nimport "gone.proto";\nmessage X { string a = 1; }\n'},
     None, "gone.proto"),
    ({"x.proto": 'syntax = "proto3";\nmessage X { string a = 1; }\n'}, "Y", "no message 'Y'"),
    ({"x.proto": 'syntax = "proto3";\nmessage X {}\nmessage Z {}\n'}, None, "set `message`"),
    ({"x.proto": 'syntax = "proto3";\nenum E { A = 0; }\n'}, None, "0 top-level messages"),
    ({"x.proto": ""}, None, "empty schema file"),
    ({"x.proto": b"\xff\xfe syntax"}, None, "cannot read schema file"),
    ({"x.proto": 'syntax = "proto3";\nimport "y.proto";\nmessage X { Y y = 1; }\n',
      "y.proto": 'syntax = "proto3";\nmessage Y { oops }\n'}, None, "y.proto"),
    ({"x.proto": 'syntax = "proto2";\nmessage X { optional group G = 1 { optional int32 a = 2; } }\n'},
     None, "is a group"),
])
def test_hostile_proto_files_are_config_errors_naming_the_file(write, files, message, expect):
    script = write("s.py", "def produce(params):\n    return '{}'\n")
    for name, text in files.items():
        if isinstance(text, bytes):
            write(name, "").write_bytes(text)
        else:
            write(name, text)
    extra = f", message: {message}" if message else ""
    config = write("v.yaml", f"""
        input: [{{cron: {{expression: "* * * * *"}}}}]
        event: {{script: {{path: {script}}}}}
        output:
          - kafka:
              bootstrap_servers: 127.0.0.1:1
              topic: t
              schema_registry: {{url: "http://127.0.0.1:1"}}
              value_schema: {{format: protobuf, path: x.proto{extra}}}
    """)
    result = run_cli("validate", config)
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert expect in result.stderr and "x.proto" in result.stderr, result.stderr
    assert "value_schema" in result.stderr
    assert not re.search(r"connector-proto-\w+", result.stderr)  # no temp folder shown


def test_message_is_for_protobuf_only(write):
    write("a.avsc", '{"type": "record", "name": "A", "fields": []}')
    with pytest.raises(ValueError, match="message is for format protobuf only"):
        sch.SchemaFile(format="avro", path=write("a.avsc", '"string"'), message="A")


def test_subject_name_strategies_use_the_messages_full_name(wide):
    path, _ = wide
    loaded = sch.load(sch.SchemaFile(format="protobuf", path=path, message="Second"))
    for strategy, expect in (("topic", "orders-value"), ("record", "t.Second"),
                             ("topic_record", "orders-t.Second")):
        config = type("C", (), {"subject_name_strategy": strategy, "topic": "orders"})
        assert sch.subject(config, "value", loaded) == expect


def test_auto_register_false_writes_with_the_registered_version(kafka_bootstrap, kafka_topic, schema_registry, write, tmp_path):
    topic = kafka_topic("pb-latest")
    client = SchemaRegistryClient({"url": schema_registry})
    # registered under topic_record: the message with one more field than the file
    registered = THING.replace("google.protobuf.Timestamp at = 4; }",
                               "google.protobuf.Timestamp at = 4; string note = 5; }")
    value_id = client.register_schema(f"{topic}-things.Thing", Schema(registered, "PROTOBUF"))
    key_id = client.register_schema(f"{topic}-things.Key", Schema(THING, "PROTOBUF"))
    config = bad_config(write, tmp_path, kafka_bootstrap, topic, schema_registry)
    text = config.read_text()
    indent = re.search(r"^( *)value_schema:", text, re.M).group(1)
    config.write_text(text.replace(f"{indent}value_schema:", f"{indent}subject_name_strategy: "
                                   f"topic_record\n{indent}auto_register: false\n{indent}value_schema:"))
    result = run_cli("run", config, "--metrics-port", "0")
    assert result.code == 1 and "delivered 19, failed 1" in result.stderr, result.stderr
    assert client.get_latest_version(f"{topic}-things.Thing").version == 1  # nothing registered
    for msg in read_topic(kafka_bootstrap, [topic]):
        assert msg.value()[:6] == b"\x00" + value_id.to_bytes(4, "big") + b"\x00"
        assert msg.key()[:7] == b"\x00" + key_id.to_bytes(4, "big") + b"\x02\x02"


def test_recursive_messages_and_deep_nesting(tmp_path):
    (tmp_path / "tree.proto").write_text(
        'syntax = "proto3";\nmessage Node { string name = 1; repeated Node children = 2; Node parent = 3; }\n')
    ser = serializer(tmp_path / "tree.proto", subject="tree")
    pool = compile_here(tmp_path, "tree.proto")
    doc = {"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}], "parent": {"name": "p"}}
    wire = ser.serialize(doc)
    assert cls_of(pool, "Node").FromString(wire[6:]) == json_format.ParseDict(doc, cls_of(pool, "Node")())
    with pytest.raises(sch.Mismatch, match="does not match schema tree"):
        ser.serialize({"children": [{"children": [{"name": 5}]}]})
    deep: dict = {}
    node = deep
    for _ in range(5000):  # deeper than Python's stack: a mismatch, never a crash
        node["parent"] = node = {}
    with pytest.raises(sch.Mismatch) as err:
        ser.serialize(deep)
    assert err.value.reason == "does not match schema tree: nested too deep"


def test_proto2_presence_and_required_fields(tmp_path):
    (tmp_path / "two.proto").write_text(
        'syntax = "proto2";\npackage p2;\nenum E { A = 0; B = 1; }\n'
        "message Two { required string id = 1; optional int32 n = 2 [default = 5]; optional E e = 3;\n"
        "  repeated int32 plain = 4; repeated int32 packed = 5 [packed = true]; }\n")
    pool = compile_here(tmp_path, "two.proto")
    for doc in ({"id": "", "n": 0, "e": "A", "plain": [1, 2], "packed": [3, 4]}, {"id": "x"}):
        theirs = confluent_bytes(pool, "p2.Two", doc)
        ser = serializer(tmp_path / "two.proto", subject="s-value",
                         schema_id=int.from_bytes(theirs[1:5], "big"))  # the mock registry's
        assert ser.serialize(doc) == theirs  # proto2 writes a present 0 and "": presence
    with pytest.raises(sch.Mismatch) as err:
        ser.serialize({"n": 1})
    assert err.value.reason == "does not match schema s-value: field 'id'"
