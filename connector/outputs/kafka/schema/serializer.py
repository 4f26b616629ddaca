"""Schema'd records in the Confluent wire format: a magic byte 0, the schema's registry id
(4 bytes, big-endian), for Protobuf the message-index array, then the payload.

Per event the hot path is orjson's parse (the sink's routing), then for Avro the strict
encoder (avro.py) or, for the schemas it does not cover, fastavro's schemaless writer
after the logical-type converters (converters.py): the same bytes confluent-kafka's
AvroSerializer writes, without its per-call rule and cache machinery. JSON Schema: a
validator built once (json_schema.py), and orjson's compact JSON, as JSONSerializer writes.
Protobuf: the strict encoder built once per message (protobuf.py).
"""

from __future__ import annotations

import base64
import io
import struct
from decimal import Decimal
from typing import Any

import orjson

from connector import values
from connector.outputs.kafka.schema import json_schema
from connector.outputs.kafka.schema.converters import Bad, Compiler
from connector.outputs.kafka.schema.files import Loaded

__all__ = ["MAGIC", "Mismatch", "Serializer"]

MAGIC = 0


class Mismatch(Exception):
    """An event the schema does not take: `reason` is bounded (schema names only), `detail`
    says what was wrong with which value (the dead letter's)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail if len(detail) <= 2000 else detail[:2000] + "..."


class Serializer:
    """One subject's writer: `serialize(value)` -> wire bytes, or raises Mismatch."""

    def __init__(self, loaded: Loaded, subject_name: str, schema_id: int):
        self.loaded, self.subject, self.schema_id = loaded, subject_name, schema_id
        self.header = struct.pack(">bI", MAGIC, schema_id)
        self.reason = f"does not match schema {subject_name}"
        if loaded.format == "avro":
            from connector.outputs.kafka.schema import avro  # its tables: only when used

            parsed = loaded.parsed
            record = isinstance(parsed, dict) and parsed.get("type") in ("record", "error")
            self.fields = frozenset(f["name"] for f in parsed["fields"]) if record else None
            # every field required: an event with as many keys as fields has no others
            required = record and not any("default" in f for f in parsed["fields"])
            self.count = len(self.fields) if required else None
            self.buffer = bytearray(self.header)  # reused: serialize runs on one thread
            try:
                self.encode = avro.encoder(parsed)
                self.serialize = self._avro
            except avro.Unsupported:  # decimal, recursive types: fastavro writes them
                from fastavro import schemaless_writer

                self.converter = Compiler(parsed).node(parsed, "")
                self._write = schemaless_writer
                self.serialize = self._fastavro
        elif loaded.format == "protobuf":
            from connector.outputs.kafka.schema import protobuf

            self.header += protobuf.index_bytes(loaded.parsed.indexes)
            self.buffer = bytearray(self.header)
            self.encode = protobuf.encoder(loaded.parsed.descriptor)
            self.unknown = protobuf.Unknown
            self.serialize = self._protobuf
        else:
            self.validator = json_schema.validator(loaded.parsed)
            self.names = json_schema.property_names(loaded.parsed)
            self.serialize = self._json

    def _avro(self, value: Any) -> bytes:
        out = self.buffer
        del out[5:]
        try:
            self.encode(value, out)
        except Bad as exc:
            raise self._bad(exc, value) from None
        fields = self.fields
        if fields is not None and len(value) != self.count and not value.keys() <= fields:
            raise self._unknown(value)
        return bytes(out)

    def _protobuf(self, value: Any) -> bytes:
        out = self.buffer
        del out[len(self.header) :]
        try:
            self.encode(value, out)
        except Bad as exc:
            if not exc.path and isinstance(exc, self.unknown):
                raise Mismatch(f"{self.reason}: unknown field", exc.why) from None
            raise self._bad(exc, value) from None
        except RecursionError:  # a recursive message nested deeper than Python's stack
            raise Mismatch(f"{self.reason}: nested too deep", "nested too deep") from None
        return bytes(out)

    def _bad(self, exc: Bad, value: Any) -> Mismatch:
        found = value
        for part in exc.path.split(".") if exc.path else ():
            found = found.get(part) if isinstance(found, dict) else None
        got = repr(found) if len(repr(found)) <= 200 else repr(found)[:200] + "..."
        return Mismatch(self._field(exc.path), f"{exc.why}, got {got}")

    def _unknown(self, value: dict) -> Mismatch:
        # named in the detail only: the names are the event's own, not a bounded set
        extra = ", ".join(sorted(map(repr, value.keys() - self.fields)))
        return Mismatch(f"{self.reason}: unknown field", f"not in the schema: {extra}")

    def _fastavro(self, value: Any) -> bytes:
        if self.converter is not None:
            try:
                value = self.converter(value)
            except Bad as exc:
                raise self._bad(exc, value) from None
        # fastavro drops fields the schema does not have (as AvroSerializer does): refuse
        # them at the top level, where a misspelt field would silently vanish
        if self.fields is not None and isinstance(value, dict) and not value.keys() <= self.fields:
            raise self._unknown(value)
        out = io.BytesIO()
        out.write(self.header)
        try:
            self._write(out, self.loaded.parsed, value)
        except Exception as exc:  # fastavro raises several types; the slow path names the field
            raise self._avro_mismatch(value, exc) from None
        return out.getvalue()

    def _avro_mismatch(self, value: Any, exc: Exception) -> Mismatch:
        from fastavro.validation import ValidationError, validate

        try:
            validate(value, self.loaded.parsed, raise_errors=True)
        except ValidationError as err:
            found = err.errors[0] if err.errors else None
            path = found.field if found is not None else ""
            root = self.loaded.name
            if path and root and path.startswith(root):  # fastavro prefixes the record name
                path = path[len(root) :].lstrip(".")
            return Mismatch(self._field(path), str(err))
        except Exception:
            pass
        return Mismatch(self.reason, f"{type(exc).__name__}: {exc}")

    def _field(self, path: str) -> str:
        return f"{self.reason}: field '{path}'" if path else self.reason

    def _json(self, value: Any) -> bytes:
        try:
            valid = self.validator.is_valid(value)
        except Exception as exc:  # a $ref that cannot be resolved (never fetched)...
            raise Mismatch(f"{self.reason}: the schema cannot be applied", str(exc)) from None
        if not valid:
            path, detail = json_schema.explain(self.validator, value, self.names)
            raise Mismatch(self._field(path), detail)
        return self.header + values.dumps(value).encode()  # integers past 64 bits too

    def text(self, wire: bytes) -> str:
        """A record back as JSON text (dead letters of records that failed after encoding)."""
        if not isinstance(wire, bytes) or wire[: len(self.header)] != self.header:
            return _show(wire)
        if self.loaded.format == "protobuf":
            return _proto_text(self.loaded.parsed.descriptor, wire[len(self.header) :], wire)
        if self.loaded.format != "avro":
            return wire[5:].decode("utf-8", "backslashreplace")
        from fastavro import schemaless_reader

        try:
            doc = schemaless_reader(io.BytesIO(wire[5:]), self.loaded.parsed, None)
            return orjson.dumps(doc, default=_plain).decode()
        except Exception:
            return _show(wire)


def _proto_text(descriptor: Any, payload: bytes, wire: bytes) -> str:
    from google.protobuf import json_format
    from google.protobuf.message_factory import GetMessageClass

    try:
        message = GetMessageClass(descriptor).FromString(payload)
        return json_format.MessageToJson(message, indent=None, preserving_proto_field_name=True)
    except Exception:
        return _show(wire)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)
