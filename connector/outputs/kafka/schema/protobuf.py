"""A strict Protobuf encoder for JSON values, built once per message type.

Each message gets a function written for it (exec), as the Avro records do (avro.py): the
fields' checks and writes inline for the common scalars, a call for the rest. The bytes are
Protobuf's binary encoding as the upb runtime's SerializeToString writes them (and so
confluent-kafka's ProtobufSerializer): fields in field-number order; proto3 scalars without
presence left out at their default; packed repeated scalars; map entries with key and value.

JSON -> Protobuf by field name, strictly: integers are range-checked, a string is no number
and a number no bool; enums by name or number; a `oneof` set by at most one field; null is
"not set"; `google.protobuf.Timestamp` from ISO-8601 or epoch milliseconds; a key the
message lacks is a mismatch (Unknown).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from connector.outputs.kafka.schema.avro import _varint
from connector.outputs.kafka.schema.converters import Bad, base64_bytes

__all__ = ["Unknown", "encoder", "index_bytes"]

Encode = Callable[[Any, bytearray], None]

_U64 = 1 << 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Timestamp's valid range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z
_SECONDS = (-62_135_596_800, 253_402_300_800)

# FieldDescriptor.TYPE_*: (range, wire type, how the value is written)
_DOUBLE, _FLOAT, _INT64, _UINT64, _INT32, _FIXED64, _FIXED32, _BOOL, _STRING = range(1, 10)
_MESSAGE, _BYTES, _UINT32, _ENUM, _SFIXED32, _SFIXED64, _SINT32, _SINT64 = range(11, 19)
_I32, _I64, _U32 = (-(2**31), 2**31), (-(2**63), 2**63), (0, 2**32)
_RANGE = {
    _INT64: _I64, _SINT64: _I64, _SFIXED64: _I64, _UINT64: (0, _U64), _FIXED64: (0, _U64),
    _INT32: _I32, _SINT32: _I32, _SFIXED32: _I32, _UINT32: _U32, _FIXED32: _U32,
}
_NAMES = {
    _INT64: "int64", _SINT64: "sint64", _SFIXED64: "sfixed64", _UINT64: "uint64",
    _FIXED64: "fixed64", _INT32: "int32", _SINT32: "sint32", _SFIXED32: "sfixed32",
    _UINT32: "uint32", _FIXED32: "fixed32",
}
_PACK = {
    _FIXED64: struct.Struct("<Q").pack, _SFIXED64: struct.Struct("<q").pack,
    _FIXED32: struct.Struct("<I").pack, _SFIXED32: struct.Struct("<i").pack,
    _DOUBLE: struct.Struct("<d").pack, _FLOAT: struct.Struct("<f").pack,
}
_WIRE = {_DOUBLE: 1, _FIXED64: 1, _SFIXED64: 1, _FLOAT: 5, _FIXED32: 5, _SFIXED32: 5,
         _STRING: 2, _BYTES: 2, _MESSAGE: 2}


class Unknown(Bad):
    """Keys the message does not have: `path` is the message's, `names` the event's keys."""

    def __init__(self, path: str, names: list[str]):
        super().__init__(path, "not in the schema: " + ", ".join(map(repr, sorted(names))))
        self.names = names


def _uvarint(n: int) -> bytes:
    out = bytearray()
    _varint(n, out)
    return bytes(out)


def index_bytes(indexes: list[int]) -> bytes:
    """Confluent's message-index array: one 0 byte for the first message, else the count
    and each index, zig-zag varints."""
    if indexes == [0]:
        return b"\x00"
    return b"".join(_uvarint(i << 1) for i in (len(indexes), *indexes))


def _tag(field, wire: int) -> bytes:
    return _uvarint(field.number << 3 | wire)


def encoder(descriptor) -> Encode:
    """An encode(value, out) for a message descriptor: appends the message's bytes."""
    return _Build().message(descriptor, "")


class _Build:
    def __init__(self):
        self.built: dict[str, Encode] = {}
        self.open: dict[str, str] = {}  # messages being built: a recursive reference

    def message(self, descriptor, path: str) -> Encode:
        if descriptor.full_name == "google.protobuf.Timestamp":
            return _timestamp(path)
        if descriptor.full_name in self.open:  # recursive: the outer one, looked up when called
            outer = self.open[descriptor.full_name]
            return lambda v, out: self.built[outer](v, out)
        key = f"{descriptor.full_name}@{path}"
        self.open[descriptor.full_name] = key
        names = frozenset(f.name for f in descriptor.fields)
        scope: dict[str, Any] = {"Bad": Bad, "varint": _varint, "U64": _U64, "names": names,
                                 "unknown": _unknown}
        body: list[str] = []
        oneofs = [o for o in descriptor.oneofs if len(o.fields) > 1]
        body += [f"o{o} = 0" for o in range(len(oneofs))]
        for i, f in enumerate(sorted(descriptor.fields, key=lambda f: f.number)):
            where = f"{path}.{f.name}" if path else f.name
            body.append(f"x = get({f.name!r})")
            if f.is_required:
                body += ["if x is None:", f"    raise Bad({where!r}, 'missing')"]
            body.append("if x is not None:")
            body.append("    seen += 1")
            if f.containing_oneof is not None and f.containing_oneof in oneofs:
                body.append(f"    o{oneofs.index(f.containing_oneof)} += 1")
            body += ["    " + line for line in self.field(f, where, i, scope)]
        for o, oneof in enumerate(oneofs):
            where = f"{path}.{oneof.name}" if path else oneof.name
            body += [f"if o{o} > 1:",
                     f"    raise Bad({where!r}, 'oneof {oneof.name} set by more than one field')"]
        source = "\n    ".join(body)
        code = f"""
def encode(v, out):
    if type(v) is not dict:
        raise Bad({path!r}, "expected an object")
    get = v.get
    seen = 0
    {source}
    if seen != len(v):
        unknown(v, names, {path!r})
"""
        exec(compile(code, f"<protobuf message {descriptor.full_name}>", "exec"), scope)
        del self.open[descriptor.full_name]
        self.built[key] = scope["encode"]
        return scope["encode"]

    def field(self, f, where: str, i: int, scope: dict) -> list[str]:
        """Lines that check and write `x` (not None) for field f."""
        w = repr(where)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            scope[f"e{i}"] = self.map(f, where)
            return [f"e{i}(x, out)"]
        if f.is_repeated:
            scope[f"e{i}"] = self.repeated(f, where)
            return [f"e{i}(x, out)"]
        kind, implicit = f.type, not f.has_presence
        if kind == _MESSAGE and f.message_type.full_name == "google.protobuf.Timestamp":
            # at most 17 bytes: a one-byte length, filled in once the payload is written
            scope[f"e{i}"], scope[f"t{i}"] = _timestamp(where), _tag(f, 2)
            return [f"out += t{i}", "k = len(out)", "out.append(0)", f"e{i}(x, out)",
                    "out[k] = len(out) - k - 1"]
        if kind == _MESSAGE:
            scope[f"e{i}"], scope[f"t{i}"] = self.message(f.message_type, where), _tag(f, 2)
            return ["m = bytearray()", f"e{i}(x, m)", f"out += t{i}",
                    "n = len(m)", "out.append(n) if n < 128 else varint(n, out)", "out += m"]
        scope[f"t{i}"] = _tag(f, _WIRE.get(kind, 0))
        skip = "if x:" if implicit else "if True:"
        if kind == _STRING:
            return ["if type(x) is not str:", f"    raise Bad({w}, 'expected a string')", skip,
                    "    try:", "        x = x.encode()", "    except UnicodeEncodeError:",
                    f"        raise Bad({w}, 'not UTF-8 (lone surrogate)') from None",
                    f"    out += t{i}", "    n = len(x)",
                    "    out.append(n) if n < 128 else varint(n, out)", "    out += x"]
        if kind in (_INT64, _INT32, _UINT64, _UINT32, _SINT64, _SINT32):
            lo, hi = _RANGE[kind]
            lines = [f"if type(x) is not int or not {lo} <= x < {hi}:",
                     f"    raise Bad({w}, 'expected an integer in {_NAMES[kind]}\\'s range')",
                     skip, f"    out += t{i}"]
            if kind in (_SINT64, _SINT32):
                lines.append("    x = (x << 1) ^ (x >> 63)")
            elif kind in (_INT64, _INT32):
                lines.append("    x = x if x >= 0 else x + U64")
            return [*lines, "    out.append(x) if x < 128 else varint(x, out)"]
        if kind == _BOOL:
            return ["if x is True:", f"    out += t{i}", "    out.append(1)",
                    "elif x is not False:", f"    raise Bad({w}, 'expected true or false')",
                    *([] if implicit else ["else:", f"    out += t{i}", "    out.append(0)"])]
        # the rest: a value writer; proto3's default dropped by its bytes (-0.0 is kept)
        scope[f"e{i}"] = self.value(f, where)
        if not implicit:
            return [f"out += t{i}", f"e{i}(x, out)"]
        return ["k = len(out)", f"out += t{i}", f"e{i}(x, out)",
                f"if out[k + {len(scope[f't{i}'])}:].count(0) == len(out) - k - "
                f"{len(scope[f't{i}'])}:", "    del out[k:]"]

    def value(self, f, where: str) -> Encode:
        """Writes one value of f's type, without its tag (elements, map entries too)."""
        kind = f.type
        if kind == _MESSAGE:
            inner = self.message(f.message_type, where)

            def encode(v: Any, out: bytearray) -> None:
                if v is None:
                    raise Bad(where, "expected an object, not null")
                m = bytearray()
                inner(v, m)
                _varint(len(m), out)
                out += m

            return encode
        if kind == _ENUM:
            return _enum(f.enum_type, where)
        if kind in (_STRING, _BYTES):
            convert = base64_bytes(where) if kind == _BYTES else _text(where)

            def encode(v: Any, out: bytearray) -> None:
                data = convert(v)
                _varint(len(data), out)
                out += data

            return encode
        if kind == _BOOL:

            def encode(v: Any, out: bytearray) -> None:
                if v is True or v is False:
                    out.append(v)
                else:
                    raise Bad(where, "expected true or false")

            return encode
        if kind in (_DOUBLE, _FLOAT):
            pack, name = _PACK[kind], "double" if kind == _DOUBLE else "float"

            def encode(v: Any, out: bytearray) -> None:
                if type(v) is not float and type(v) is not int:
                    raise Bad(where, "expected a number")
                try:
                    out += pack(v)
                except (OverflowError, struct.error):
                    raise Bad(where, f"out of {name}'s range") from None

            return encode
        lo, hi = _RANGE[kind]
        why = f"expected an integer in {_NAMES[kind]}'s range"
        pack = _PACK.get(kind)
        zigzag = kind in (_SINT32, _SINT64)

        def encode(v: Any, out: bytearray) -> None:
            if type(v) is not int or not lo <= v < hi:
                raise Bad(where, why)
            if pack is not None:
                out += pack(v)
            else:
                _varint((v << 1) ^ (v >> 63) if zigzag else v % _U64, out)

        return encode

    def repeated(self, f, where: str) -> Encode:
        value = self.value(f, where)
        if f.is_packed:
            tag = _tag(f, 2)

            def encode(v: Any, out: bytearray) -> None:
                if type(v) is not list:
                    raise Bad(where, "expected an array")
                if v:
                    m = bytearray()
                    for x in v:
                        value(x, m)
                    out += tag
                    _varint(len(m), out)
                    out += m

            return encode
        tag = _tag(f, _WIRE.get(f.type, 0))

        def encode(v: Any, out: bytearray) -> None:
            if type(v) is not list:
                raise Bad(where, "expected an array")
            for x in v:
                out += tag
                value(x, out)

        return encode

    def map(self, f, where: str) -> Encode:
        entry = f.message_type
        key_f, value_f = entry.fields_by_number[1], entry.fields_by_number[2]
        key, value = self.value(key_f, where), self.value(value_f, where)
        key_tag, value_tag = _tag(key_f, _WIRE.get(key_f.type, 0)), _tag(value_f, _WIRE.get(
            value_f.type, 0))
        tag, to_key = _tag(f, 2), _map_key(key_f.type, where)

        def encode(v: Any, out: bytearray) -> None:
            if type(v) is not dict:
                raise Bad(where, "expected an object (a map)")
            for k, x in v.items():
                m = bytearray(key_tag)
                key(to_key(k), m)
                m += value_tag
                value(x, m)
                out += tag
                _varint(len(m), out)
                out += m

        return encode


def _unknown(v: dict, names: frozenset, path: str) -> None:
    extra = [k for k in v if k not in names]
    if extra:
        raise Unknown(path, extra)
    # otherwise the difference was keys set to null: not set


def _text(where: str) -> Callable[[Any], bytes]:
    def convert(v: Any) -> bytes:
        if type(v) is not str:
            raise Bad(where, "expected a string")
        try:
            return v.encode()
        except UnicodeEncodeError:
            raise Bad(where, "not UTF-8 (lone surrogate)") from None

    return convert


def _enum(enum, where: str) -> Encode:
    table: dict[Any, bytes] = {}
    for value in enum.values:
        data = _uvarint(value.number % _U64)
        table[value.name] = table[value.number] = data

    def encode(v: Any, out: bytearray) -> None:
        data = table.get(v) if type(v) is str or type(v) is int else None
        if data is None:
            raise Bad(where, f"not a value of enum {enum.name} (a name or a number)")
        out += data

    return encode


def _map_key(kind: int, where: str) -> Callable[[str], Any]:
    """JSON object keys are strings: a map's integer or bool keys are written as text."""
    if kind == _BOOL:
        table = {"true": True, "false": False}

        def convert(k: str) -> Any:
            if k not in table:
                raise Bad(where, "expected a map key 'true' or 'false'")
            return table[k]

        return convert
    if kind in _RANGE:

        def convert(k: str) -> Any:
            try:
                return int(k) if k.lstrip("-").isdigit() and k.isascii() else int("x")
            except ValueError:
                raise Bad(where, "expected an integer map key") from None

        return convert
    return lambda k: k


def _timestamp(path: str) -> Encode:
    """google.protobuf.Timestamp's fields (seconds, nanos) from ISO-8601 (naive: UTC) or
    epoch milliseconds."""
    parse = datetime.fromisoformat
    why = "expected an ISO-8601 time or epoch milliseconds"
    lo, hi = _SECONDS

    def encode(v: Any, out: bytearray) -> None:
        if type(v) is str:
            try:
                when = parse(v)
            except ValueError:
                raise Bad(path, why) from None
            gap = (when if when.tzinfo else when.replace(tzinfo=UTC)) - _EPOCH
            seconds, nanos = gap.days * 86_400 + gap.seconds, gap.microseconds * 1000
        elif type(v) is int:
            seconds, millis = divmod(v, 1000)
            nanos = millis * 1_000_000
        else:
            raise Bad(path, why)
        if not lo <= seconds < hi:
            raise Bad(path, "outside Timestamp's range (years 1 to 9999)")
        if seconds:
            out.append(0x08)
            _varint(seconds if seconds > 0 else seconds + _U64, out)
        if nanos:
            out.append(0x10)
            _varint(nanos, out)

    return encode
