"""The protobuf wire format, written by hand for the OTLP messages all signals share.

A tag byte is (field number << 3) | wire type. Building opentelemetry-proto message
objects costs several times what these bytes do; tests decode every field back with
opentelemetry-proto to prove they are the same.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

from connector import __version__

__all__ = [
    "SCOPE",
    "SCOPE_FIELD",
    "anyvalue",
    "attributes",
    "double",
    "field",
    "fixed64",
    "framed",
    "read",
    "request",
    "resource_field",
    "resource_key",
    "resource_message",
    "varint",
]

fixed64 = struct.Struct("<Q").pack
double = struct.Struct("<d").pack


def varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes or a nested message."""
    return tag + varint(len(payload)) + payload


def anyvalue(value: Any) -> bytes:
    """An AnyValue message: string 1, bool 2, int 3, double 4, array 5, kvlist 6."""
    if value is None:  # JSON null (in a list, or a log body): an AnyValue with no value
        return b""
    if isinstance(value, str):
        return field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):  # past int64, keep the digits rather than fail the event
        if -(2**63) <= value < 2**63:
            return b"\x18" + varint(value % 2**64)  # negatives: two's complement, 10 bytes
        return field(b"\x0a", str(value).encode())
    if isinstance(value, float):
        return b"\x21" + double(value)
    if isinstance(value, list | tuple):  # ArrayValue{values = 1}
        return field(b"\x2a", b"".join(field(b"\x0a", anyvalue(v)) for v in value))
    if isinstance(value, dict):  # KeyValueList{values = 1}
        return field(b"\x32", b"".join(field(b"\x0a", kv) for kv in attributes(value)))
    return field(b"\x0a", str(value).encode())


def attributes(items: dict) -> list[bytes]:
    """KeyValue messages {key = 1, value = 2}; null values are dropped."""
    return [
        field(b"\x0a", str(k).encode()) + field(b"\x12", anyvalue(v))
        for k, v in items.items()
        if v is not None
    ]


def resource_key(service: str, resource: dict | None) -> tuple:
    """What groups items by resource: the service, then the other resource attributes
    (JSON-encoded, so a key is hashable whatever the values; the service field wins)."""
    if not resource:
        return (service,)
    attrs = (
        (str(k), orjson.dumps(v))
        for k, v in resource.items()
        if v is not None and k != "service.name"
    )
    return (service, *sorted(attrs))


def resource_message(key: tuple) -> bytes:
    """Resource{attributes 1} from a resource key."""
    service, *rest = key
    kvs = attributes({"service.name": service})
    kvs += attributes({k: orjson.loads(v) for k, v in rest})
    return b"".join(field(b"\x0a", kv) for kv in kvs)


_RESOURCES: dict[tuple, bytes] = {}  # key -> resource_field(key): services repeat


def resource_field(key: tuple) -> bytes:
    """Resource{X} field 1, the Resource of a key; cached (a trace's or a batch's groups
    name the same few services again and again)."""
    found = _RESOURCES.get(key)
    if found is None:
        found = field(b"\x0a", resource_message(key))
        if len(_RESOURCES) < 4096:
            _RESOURCES[key] = found
    return found


# InstrumentationScope{name 1, version 2}
SCOPE = field(b"\x0a", b"connector") + field(b"\x12", __version__.encode())
SCOPE_FIELD = field(b"\x0a", SCOPE)  # ScopeX field 1


# the tag and length of a message under 4 KiB (spans, log records, data points mostly are),
# for field 1 (a data point) and field 2 (a span, a log record)
_HEADS = {tag: [tag + varint(n) for n in range(4096)] for tag in (b"\x0a", b"\x12")}


def framed(tag: bytes, items: list[bytes]) -> bytes:
    """Each item as a field of `tag` (what field() writes), joined: heads from a table, one
    join."""
    parts: list[bytes] = []
    extend, heads = parts.extend, _HEADS[tag]
    for item in items:
        n = len(item)
        extend((heads[n] if n < 4096 else tag + varint(n), item))
    return b"".join(parts)


def request(grouped: dict[tuple, list[bytes]]) -> bytes:
    """An Export{Trace,Logs}ServiceRequest: both have the same shape and field numbers.

    Request{resource_X 1}; ResourceX{resource 1, scope_X 2}; ScopeX{scope 1, items 2}.
    """
    out = []
    for key, items in grouped.items():
        scoped = SCOPE_FIELD + framed(b"\x12", items)
        out.append(field(b"\x0a", resource_field(key) + field(b"\x12", scoped)))
    return b"".join(out)


def read(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of one message: varints and fixed64 as ints,
    length-delimited as bytes (fixed32 is skipped). ValueError when malformed."""
    out, i, n = [], 0, len(data)
    while i < n:
        tag, i = _read_varint(data, i)
        number, kind = tag >> 3, tag & 7
        if kind == 0:
            value, i = _read_varint(data, i)
        elif kind == 1:
            value, i = int.from_bytes(data[i : i + 8], "little"), i + 8
        elif kind == 2:
            size, i = _read_varint(data, i)
            value, i = data[i : i + size], i + size
        elif kind == 5:
            i += 4
            continue
        else:
            raise ValueError(f"wire type {kind}")
        if i > n:
            raise ValueError("truncated")
        out.append((number, value))
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7
