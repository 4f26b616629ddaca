"""A Kafka topic range as a recording: the given partitions (default all), each from
`start` to `end` (offsets, times, or earliest/latest as they are when the run starts),
read one partition after another, as `read_committed` when asked. Values are decoded as
the connector writes them: raw (JSON with `time_field`, else text at the record's own
timestamp), otlp_json, otlp_proto, Avro, JSON Schema or Protobuf (the registry's wire format)."""

from __future__ import annotations

import base64
import io
import json
import struct
import time
from collections.abc import Iterator
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from connector.replay.config import KafkaSource
from connector.replay.otlp_json import OtlpRecords, render_otlp
from connector.replay.protobuf import ProtoRecords
from connector.replay.records import BadRecord, Ids, Record
from connector.replay.text import render_doc
from connector.replay.times import from_nanos, nanos, read_time

__all__ = ["KafkaReader"]

TIMEOUT = 10.0  # seconds for metadata and watermarks
_KEY = "event.replay.kafka"


class KafkaReader:
    def __init__(self, config: KafkaSource, tz: tzinfo):
        self.config, self.tz = config, tz
        self.name = config.topic
        self.otlp = OtlpRecords(config.signal) if config.encoding.startswith("otlp") else None
        self._ranges: list[tuple[int, int, int]] | None = None  # (partition, start, end)
        self._schemas: dict[int, Any] = {}
        self._registry: Any = None
        self._proto: ProtoRecords | None = None

    # -- the range, resolved once -----------------------------------------------------
    def _consumer(self) -> Consumer:
        c = self.config
        return Consumer({
            "log_level": 0,  # its connection retries would flood stderr: errors come back here
            **c.consumer,
            "bootstrap.servers": c.bootstrap_servers,
            "group.id": "connector-replay (assign only, nothing committed)",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if c.read_committed else "read_uncommitted",
        })

    def check(self) -> list[str]:
        try:
            self._ranges = self._resolve()
        except _Problem as exc:
            return [str(exc)]
        except KafkaException as exc:
            error = exc.args[0]
            why = error.str() if isinstance(error, KafkaError) else str(error)
            return [f"{_KEY}: cannot read topic {self.config.topic!r} from "
                    f"{self.config.bootstrap_servers}: {why}"]
        return []

    def _resolve(self) -> list[tuple[int, int, int]]:
        c = self.config
        consumer = self._consumer()
        try:
            topics = consumer.list_topics(c.topic, timeout=TIMEOUT).topics
            meta = topics.get(c.topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise _Problem(f"{_KEY}.topic: topic {c.topic!r} does not exist")
            known = sorted(meta.partitions)
            wanted = list(c.partitions) if c.partitions is not None else known
            if missing := [p for p in wanted if p not in known]:
                raise _Problem(f"{_KEY}.partitions: {c.topic!r} has no partition {missing[0]} "
                               f"(it has {len(known)}: 0-{len(known) - 1})")
            ranges = []
            for p in wanted:
                low, high = consumer.get_watermark_offsets(TopicPartition(c.topic, p),
                                                           timeout=TIMEOUT)
                start = self._offset(consumer, p, c.start, low, high, "start")
                end = self._offset(consumer, p, c.end, low, high, "end")
                if start > high:
                    raise _Problem(f"{_KEY}.start: offset {start} is past the end of partition "
                                   f"{p} (it holds offsets {low} to {high - 1})")
                ranges.append((p, max(start, low), min(end, high)))
            return ranges
        finally:
            consumer.close()

    def _offset(self, consumer: Consumer, p: int, spec: Any, low: int, high: int,
                key: str) -> int:
        if spec == "earliest":
            return low
        if spec == "latest":
            return high
        if isinstance(spec, int):
            return spec
        when = spec if spec.tzinfo else spec.replace(tzinfo=self.tz)
        asked = TopicPartition(self.config.topic, p, nanos(when) // 1_000_000)
        found = consumer.offsets_for_times([asked], timeout=TIMEOUT)[0]
        return high if found.offset < 0 else found.offset  # no record that late: the end

    # -- the records ------------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        if self._ranges is None:
            self._ranges = self._resolve()
        consumer = self._consumer()
        try:
            for p, start, end in self._ranges:
                if start >= end:
                    continue
                consumer.assign([TopicPartition(self.config.topic, p, start)])
                yield from self._partition(consumer, p, end)
        finally:
            consumer.close()

    def _partition(self, consumer: Consumer, p: int, end: int) -> Iterator[Record]:
        topic, idle = self.config.topic, self.config.idle_timeout
        quiet_since = time.monotonic()
        while True:
            messages = consumer.consume(1000, timeout=1.0)
            if messages:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > idle:  # the broker gone, an open transaction
                yield BadRecord(None, f"{topic}/{p}", f"nothing read for {idle:g} s before "
                                                      f"offset {end}; the rest of the partition "
                                                      "is skipped")
                return
            for msg in messages:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return  # read_committed: the stable end may come before `end`
                    yield BadRecord(None, f"{topic}/{p}", f"cannot read: {error.str()}")
                    return
                if msg.offset() >= end:
                    return
                yield from self._decode(msg, f"{topic}/{p}@{msg.offset()}")
                if msg.offset() >= end - 1:
                    return

    def _decode(self, msg: Any, where: str) -> Iterator[Record]:
        value, c = msg.value(), self.config
        if value is None:
            yield BadRecord(None, where, "no value (a tombstone)")
            return
        if self.otlp is not None:
            if c.encoding == "otlp_proto":
                from connector.otlp.codec import otlp_json

                try:
                    value = otlp_json(value, c.signal)
                except Exception as exc:  # protobuf's DecodeError and its kin
                    yield BadRecord(None, where, f"not an OTLP {c.signal} protobuf ({exc!r:.100})")
                    return
            yield from self.otlp.parse(value, where)
            return
        kind, stamp = msg.timestamp()
        recorded = from_nanos(stamp * 1_000_000, self.tz) if kind and stamp >= 0 else None
        try:
            doc = self._value(value)
        except (ValueError, KeyError, EOFError, struct.error, KafkaException) as exc:
            if c.encoding == "raw" and c.time_field is None:
                yield Record(recorded, value, where)  # text: replayed as it is
            else:
                yield BadRecord(None, where, f"cannot decode as {c.encoding} ({exc!r:.200})")
            return
        if c.time_field is None or not isinstance(doc, dict):
            yield Record(recorded, doc, where)
            return
        when = read_time(_plain(doc.get(c.time_field)), self.tz)
        if when is None:
            yield BadRecord(None, where, f"field '{c.time_field}' is missing or no time")
            return
        yield Record(when, doc, where)

    def _value(self, value: bytes) -> Any:
        encoding = self.config.encoding
        if encoding == "raw":
            return json.loads(value)
        if len(value) < 5 or value[0] != 0:
            raise ValueError("no schema registry header (magic byte 0, schema id)")
        body = value[5:]
        if encoding == "json_schema":
            return json.loads(body)
        schema_id = struct.unpack(">I", value[1:5])[0]
        if encoding == "protobuf":
            if self._proto is None:
                self._proto = ProtoRecords(self._client())
            return self._proto.decode(schema_id, body)
        from fastavro import schemaless_reader

        return schemaless_reader(io.BytesIO(body), self._avro(schema_id), None)

    def _client(self) -> Any:
        if self._registry is None:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            self._registry = SchemaRegistryClient({"url": self.config.schema_registry})
        return self._registry

    def _avro(self, schema_id: int) -> Any:
        parsed = self._schemas.get(schema_id)
        if parsed is None:
            from fastavro import parse_schema

            try:
                text = self._client().get_schema(schema_id).schema_str
            except Exception as exc:  # the registry's errors have no one base class
                raise ValueError(f"schema id {schema_id}: {exc}") from None
            parsed = self._schemas[schema_id] = parse_schema(json.loads(text))
        return parsed

    def render(self, record: Record, new_time: datetime, ids: Ids | None) -> list[str]:
        if self.otlp is not None:
            return render_otlp(self.config.signal, record, new_time, ids, self.tz)
        data = record.data
        if isinstance(data, bytes):
            return [data.decode("utf-8", "replace")]
        if not isinstance(data, dict):
            return [json.dumps(_plain(data), ensure_ascii=False)]
        return render_doc(_plain(data), self.config.time_field, self.config.id_fields,
                          new_time, ids)


class _Problem(Exception):
    """A config error of the range: its message names the key."""


def _plain(value: Any) -> Any:
    """Avro's decoded values as JSON ones (times ISO-8601, bytes base64), which the
    connector's own writers read back the same way."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    return value
