"""A topic range in each encoding the connector writes (Avro, JSON Schema and Protobuf
through the registry, otlp_proto, otlp_json), written by the connector itself, replayed
through a `stages` shape into a second topic: the count per second follows the shape (within 1/s),
and each record's content is the recorded one's but for the rewritten time (and ids)."""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from tests.harness.cli import EXAMPLES, no_traceback, run_cli
from tests.harness.kafka import read_topic
from tests.harness.protobuf import compile_here

_US = timedelta(microseconds=1)
SHAPE_START = datetime(2026, 3, 1, tzinfo=UTC)
TICKS = 300  # the ramp 0 -> 60/s over 10 s: 6s + 3 ticks in second s

PROTOBUF = EXAMPLES / "kafka-protobuf"
WRITERS = {  # encoding -> (script, its kafka output's settings, the time field or None)
    "avro": (EXAMPLES / "kafka-avro" / "orders.py",
             {"value_schema": {"format": "avro",
                               "path": str(EXAMPLES / "kafka-avro" / "schemas" / "order.avsc")}},
             "created_at"),
    "json_schema": (EXAMPLES / "kafka-json-schema" / "payments.py",
                    {"value_schema": {"format": "json_schema", "path": str(
                        EXAMPLES / "kafka-json-schema" / "schemas" / "payment.json")}},
                    "at"),
    "protobuf": (PROTOBUF / "payments.py",
                 {"value_schema": {"format": "protobuf", "message": "shop.Payment",
                                   "path": str(PROTOBUF / "schemas" / "payment.proto")}},
                 "created_at"),
    "otlp_proto": (EXAMPLES / "tracing" / "tracing.py",
                   {"encoding": "otlp_proto", "signal": "traces"}, None),
    "otlp_json": (EXAMPLES / "tracing" / "tracing.py",
                  {"encoding": "otlp_json", "signal": "traces"}, None),
}


def per_second_follows_the_ramp(times: list[datetime]) -> None:
    counts = Counter(int((t - SHAPE_START).total_seconds()) for t in times)
    assert len(times) == TICKS
    for second in range(10):
        assert abs(counts[second] - (6 * second + 3)) <= 1, (second, counts)


@pytest.mark.parametrize("encoding", list(WRITERS))
def test_each_encoding_replays_through_a_load_shape(write, kafka_bootstrap, kafka_topic,
                                                    schema_registry, encoding):
    script, settings, time_field = WRITERS[encoding]
    source, target = kafka_topic("src", partitions=1), kafka_topic("dst", partitions=1)
    registry = {"schema_registry": {"url": schema_registry}} if time_field else {}
    recorder = write("record.yaml", json.dumps({
        "mode": "backfill",
        "input": [{"rate": {"per_second": 1, "start": "2026-02-20T10:00:00Z",
                            "end": "2026-02-20T10:06:00Z"}}],  # 360 records (or traces)
        "event": {"script": {"path": str(script)}},
        "output": [{"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": source,
                              **registry, **settings}}],
    }))
    result = run_cli("run", recorder, "--seed", "2", "--metrics-port", "0")
    assert result.code == 0, result.stderr[-2000:]

    replay = {"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": source,
                        "start": 30, "end": 30 + TICKS, "encoding": encoding,
                        **({"schema_registry": schema_registry, "time_field": time_field}
                           if time_field else {"signal": "traces"})},
              "new_ids": True}
    player = write("replay.yaml", json.dumps({
        "mode": "backfill",
        "input": [{"rate": {"stages": [{"duration": "10s", "target": 60}],
                            "start": SHAPE_START.isoformat()}}],
        "event": {"replay": replay},
        "output": [{"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": target}}],
    }))
    result = run_cli("run", player, "--seed", "2", "--metrics-port", "0")
    no_traceback(result.stderr)
    assert result.code == 0, result.stderr[-2000:]
    recorded = read_topic(kafka_bootstrap, source)[30:30 + TICKS]
    got = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, target)]
    if time_field:
        check_records(encoding, recorded, got, time_field, schema_registry)
    else:
        check_traces(encoding, recorded, got)


def check_records(encoding, recorded, got, field, registry_url):
    assert len(got) == TICKS
    for message, doc in zip(recorded, got, strict=True):
        was = decode(encoding, message.value(), registry_url)
        assert {k: v for k, v in doc.items() if k != field} == {
            k: v for k, v in was.items() if k != field}
    per_second_follows_the_ramp([datetime.fromisoformat(d[field]) for d in got])


def decode(encoding: str, value: bytes, registry_url: str) -> dict:
    """The recorded record, read independently of the replay (confluent's deserializer)."""
    if encoding == "json_schema":
        return json.loads(value[5:])
    if encoding == "protobuf":  # protoc's own compile, confluent's deserializer
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
        from google.protobuf.json_format import MessageToDict
        from google.protobuf.message_factory import GetMessageClass

        pool = compile_here(PROTOBUF / "schemas", "payment.proto")
        cls = GetMessageClass(pool.FindMessageTypeByName("shop.Payment"))
        message = ProtobufDeserializer(cls, {"use.deprecated.format": False})(value, None)
        return MessageToDict(message, preserving_proto_field_name=True)
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    reader = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    return reader(value, SerializationContext("t", MessageField.VALUE))


def check_traces(encoding, recorded, got):
    from google.protobuf.json_format import Parse
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    old = []  # per recorded trace: sorted (service, name, offset from the root in us)
    for m in recorded:
        request = ExportTraceServiceRequest()
        if encoding == "otlp_proto":
            request.ParseFromString(m.value())
        else:
            doc = json.loads(m.value())
            for rs in doc["resourceSpans"]:  # OTLP/JSON ids are hex, protobuf's base64
                for ss in rs["scopeSpans"]:
                    for s in ss["spans"]:
                        for key in ("traceId", "spanId", "parentSpanId"):
                            if s.get(key):
                                s[key] = base64.b64encode(bytes.fromhex(s[key])).decode()
            Parse(json.dumps(doc), request)
        spans = [(rs.resource.attributes[0].value.string_value, s)
                 for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        root = min(s.start_time_unix_nano for _, s in spans)
        old.append((spans[0][1].trace_id.hex(),
                    sorted((svc, s.name, (s.start_time_unix_nano - root) // 1000)
                           for svc, s in spans)))
    traces = defaultdict(list)
    for span in got:
        traces[span["trace_id"]].append(span)
    assert len(traces) == TICKS
    roots = []
    for (old_id, shape), (new_id, spans) in zip(old, traces.items(), strict=True):
        assert new_id != old_id
        starts = [datetime.fromisoformat(s["start_time"]) for s in spans]
        root = min(starts)
        roots.append(root)
        mine = sorted((s["service"], s["operation"], (t - root) // _US)
                      for s, t in zip(spans, starts, strict=True))
        assert [(a, b) for a, b, _ in mine] == [(a, b) for a, b, _ in shape]
        assert all(abs(x[2] - y[2]) <= 1 for x, y in zip(mine, shape, strict=True))
        ids = {s["span_id"] for s in spans}
        assert all(s.get("parent_span_id") in ids for s in spans if s.get("parent_span_id"))
    per_second_follows_the_ramp(roots)

