"""A strict Avro binary encoder, built once per schema, for JSON values.

fastavro's writer is lenient where JSON is loose: it writes 1.5 into a long, `"true"` into
a boolean and 2**31 into an int without a word, and it costs about 5 us a small record.
This encoder is a tree of small closures, one per schema node, that checks each value's
JSON type as it writes: anything the schema does not take raises Bad with the field's path.
The bytes are Avro's binary encoding, as fastavro (and so confluent-kafka's AvroSerializer)
writes it: zig-zag varints, IEEE little-endian floats, length-prefixed strings and bytes,
arrays and maps as one counted block then 0, a union's branch index then the value.
Unions pick their branch by the JSON value's type, the first branch that takes it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from connector.outputs.kafka.schema.converters import (
    INSTANT,
    Bad,
    base64_bytes,
    date_days,
    instant,
    time_of_day,
)

__all__ = ["Unsupported", "encoder"]

Encode = Callable[[Any, bytearray], None]

_SMALL = [bytes([n]) for n in range(128)]
_FLOAT, _DOUBLE = struct.Struct("<f").pack, struct.Struct("<d").pack
_LONG = (-(2**63), 2**63)
_INT = (-(2**31), 2**31)


class Unsupported(Exception):
    """A schema this encoder does not cover (decimal, recursive types): use fastavro."""


# 14 bits at a time from two tables (16,384 two-byte entries each): an epoch-millisecond
# time (6 bytes) takes 3 lookups instead of 6 rounds of shifting
_MORE = [bytes((i & 0x7F | 0x80, i >> 7 | 0x80)) for i in range(1 << 14)]
_LAST = [bytes((i,)) if i < 0x80 else bytes((i & 0x7F | 0x80, i >> 7)) for i in range(1 << 14)]


def _varint(n: int, out: bytearray) -> None:
    """A zig-zagged value's varint bytes (n >= 0)."""
    while n >= 0x4000:
        out += _MORE[n & 0x3FFF]
        n >>= 14
    out += _LAST[n]


def _long(v: int, out: bytearray) -> None:
    n = (v << 1) ^ (v >> 63)
    if n < 128:
        out += _SMALL[n]
    else:
        _varint(n, out)


def _is_int(v: Any, bounds: tuple[int, int]) -> bool:
    return type(v) is int and bounds[0] <= v < bounds[1]


def encoder(parsed: Any) -> Encode:
    """An encode(value, out) for a fastavro-parsed schema; raises Unsupported."""
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    return _Build(named).node(parsed, "")


class _Build:
    def __init__(self, named: dict):
        self.named = named
        self.open: set[str] = set()  # records being built: a recursive reference

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema in self.named:
            return self.named[schema]
        return schema

    def node(self, schema: Any, path: str) -> Encode:
        if isinstance(schema, str):
            if schema in self.named:
                if schema in self.open:
                    raise Unsupported(f"recursive type {schema}")
                return self.node(self.named[schema], path)
            return self.primitive(schema, None, path)
        if isinstance(schema, list):
            return self.union(schema, path)
        kind = schema.get("type")
        if isinstance(kind, dict | list):
            return self.node(kind, path)
        if kind in ("record", "error"):
            return self.record(schema, path)
        if kind == "enum":
            return self.enum(schema, path)
        if kind == "array":
            return self.array(schema, path)
        if kind == "map":
            return self.map(schema, path)
        if kind == "fixed":
            if schema.get("logicalType") == "decimal":
                raise Unsupported("decimal")
            return _bytes(base64_bytes(path, schema["size"]), path, schema["size"])
        return self.primitive(kind, schema.get("logicalType"), path)

    def primitive(self, kind: str, logical: str | None, path: str) -> Encode:
        if logical == "decimal":
            raise Unsupported("decimal")
        if kind == "long" and logical in INSTANT:
            return _converted_long(instant(INSTANT[logical], path), _LONG, path)
        if kind == "int" and logical == "date":
            return _converted_long(date_days(path), _INT, path)
        if kind == "int" and logical == "time-millis":
            return _converted_long(time_of_day(1000, path), _INT, path)
        if kind == "long" and logical == "time-micros":
            return _converted_long(time_of_day(1_000_000, path), _LONG, path)
        if kind == "null":

            def encode(v: Any, out: bytearray) -> None:
                if v is not None:
                    raise Bad(path, "expected null")

        elif kind == "boolean":

            def encode(v: Any, out: bytearray) -> None:
                if v is True:
                    out.append(1)
                elif v is False:
                    out.append(0)
                else:
                    raise Bad(path, "expected true or false")

        elif kind in ("int", "long"):
            bounds = _INT if kind == "int" else _LONG

            def encode(v: Any, out: bytearray) -> None:
                if type(v) is not int or not bounds[0] <= v < bounds[1]:
                    raise Bad(path, f"expected an integer in Avro {kind}'s range")
                _long(v, out)

        elif kind in ("float", "double"):
            pack = _FLOAT if kind == "float" else _DOUBLE

            def encode(v: Any, out: bytearray) -> None:
                if type(v) is not float and type(v) is not int:
                    raise Bad(path, "expected a number")
                try:
                    out += pack(v)
                except (OverflowError, struct.error):
                    raise Bad(path, f"out of Avro {kind}'s range") from None

        elif kind == "string":

            def encode(v: Any, out: bytearray) -> None:
                if type(v) is not str:
                    raise Bad(path, "expected a string")
                try:
                    data = v.encode()
                except UnicodeEncodeError:
                    raise Bad(path, "not UTF-8 (lone surrogate)") from None
                n = len(data) << 1
                if n < 128:
                    out += _SMALL[n]
                else:
                    _varint(n, out)
                out += data

        elif kind == "bytes":
            return _bytes(base64_bytes(path), path, None)
        else:
            raise Unsupported(f"type {kind}")
        return encode

    def record(self, schema: dict, path: str) -> Encode:
        """A function written for this record (exec): the fields' checks and writes inline,
        without a call per field; nested and composite types call their own encoders."""
        name = schema.get("name", "")
        self.open.add(name)
        body, scope = [], {"Bad": Bad, "varint": _varint, "pack_f": _FLOAT, "pack_d": _DOUBLE}
        for i, f in enumerate(schema["fields"]):
            key, where = f["name"], f"{path}.{f['name']}" if path else f["name"]
            if "default" in f:  # a missing field is written as its default, as fastavro does
                scope[f"d{i}"] = f["default"]
                body.append(f"x = v[{key!r}] if {key!r} in v else d{i}")
            else:
                body.append(f"x = v[{key!r}]")
            body += self.inline(f["type"], where, i, scope)
        self.open.discard(name)
        source = "\n        ".join(body) or "pass"
        code = f"""
def encode(v, out):
    if type(v) is not dict:
        raise Bad({path!r}, "expected an object")
    try:
        {source}
    except KeyError as exc:
        key = exc.args[0]
        raise Bad(f"{{{path!r}}}.{{key}}" if {path!r} else key, "missing") from None
    except UnicodeEncodeError:
        raise Bad({path!r}, "not UTF-8 (lone surrogate)") from None
"""
        exec(compile(code, f"<avro record {name}>", "exec"), scope)
        return scope["encode"]

    def inline(self, schema: Any, where: str, i: int, scope: dict) -> list[str]:
        """Lines that check and write `x` for the common primitive types; a call otherwise."""
        resolved = self.resolve(schema)
        if isinstance(resolved, list):  # a union
            scope[f"e{i}"] = self.node(schema, where)
            return [f"e{i}(x, out)"]
        kind = resolved if isinstance(resolved, str) else resolved.get("type")
        logical = None if isinstance(resolved, str) else resolved.get("logicalType")
        w = repr(where)
        if kind == "string":  # uuid too: a string
            return [
                "if type(x) is not str:",
                f"    raise Bad({w}, 'expected a string')",
                "x = x.encode()",
                "n = len(x) << 1",
                "out.append(n) if n < 128 else varint(n, out)",
                "out += x",
            ]
        if kind in ("int", "long") and (not logical or logical in INSTANT or logical == "date"):
            lo, hi = _INT if kind == "int" else _LONG
            lines = []
            if logical:  # times: ISO-8601 strings to epoch units first
                scope[f"c{i}"] = self.primitive(kind, logical, where).convert
                lines.append(f"x = c{i}(x)")
            return [
                *lines,
                f"if type(x) is not int or not {lo} <= x < {hi}:",
                f"    raise Bad({w}, 'expected an integer in Avro {kind}\\'s range')",
                "n = (x << 1) ^ (x >> 63)",
                "out.append(n) if n < 128 else varint(n, out)",
            ]
        if kind == "boolean":
            return [
                "if x is True:",
                "    out.append(1)",
                "elif x is False:",
                "    out.append(0)",
                "else:",
                f"    raise Bad({w}, 'expected true or false')",
            ]
        scope[f"e{i}"] = self.node(schema, where)
        return [f"e{i}(x, out)"]

    def enum(self, schema: dict, path: str) -> Encode:
        index = {s: _zz(i) for i, s in enumerate(schema["symbols"])}

        def encode(v: Any, out: bytearray) -> None:
            try:
                out += index[v]
            except (KeyError, TypeError):
                raise Bad(path, "not one of the enum's symbols") from None

        return encode

    def array(self, schema: dict, path: str) -> Encode:
        item = self.node(schema["items"], path)

        def encode(v: Any, out: bytearray) -> None:
            if type(v) is not list:
                raise Bad(path, "expected an array")
            if v:
                _long(len(v), out)
                for x in v:
                    item(x, out)
            out.append(0)

        return encode

    def map(self, schema: dict, path: str) -> Encode:
        value = self.node(schema["values"], path)
        key = self.primitive("string", None, path)

        def encode(v: Any, out: bytearray) -> None:
            if type(v) is not dict:
                raise Bad(path, "expected an object (a map)")
            if v:
                _long(len(v), out)
                for k, x in v.items():
                    key(k, out)
                    value(x, out)
            out.append(0)

        return encode

    def union(self, branches: list, path: str) -> Encode:
        """Branch by the JSON value's type: the first branch of a matching kind that takes
        the value; an object goes to the record branch with the most fields that takes it,
        else a map."""
        by_type: dict[type, list[tuple[bytes, Encode]]] = {}
        records: list[tuple[int, bytes, Encode]] = []
        for i, branch in enumerate(branches):
            schema = self.resolve(branch)
            kind = schema if isinstance(schema, str) else schema.get("type")
            if isinstance(kind, dict):
                kind = kind.get("type")
            logical = None if isinstance(schema, str) else schema.get("logicalType")
            tag, enc = _zz(i), self.node(branch, path)
            if kind in ("record", "error"):
                records.append((len(schema["fields"]), tag, enc))
                continue
            takes = {
                "null": (type(None),),
                "boolean": (bool,),
                "int": (int,),
                "long": (int, str) if logical else (int,),
                "float": (int, float),
                "double": (int, float),
                "string": (str,),
                "enum": (str,),
                "bytes": (str,),
                "fixed": (str,),
                "array": (list,),
                "map": (dict,),
            }.get(kind, ())
            if kind == "int" and logical:
                takes = (int, str)
            for t in takes:
                by_type.setdefault(t, []).append((tag, enc))
        records.sort(key=lambda r: -r[0])  # most fields first, stable: schema order on ties
        objects = [(tag, enc) for _, tag, enc in records] + by_type.get(dict, [])
        by_type[dict] = objects

        def encode(v: Any, out: bytearray) -> None:
            for tag, enc in by_type.get(type(v), ()):
                mark = len(out)
                out += tag
                try:
                    enc(v, out)
                    return
                except Bad:
                    del out[mark:]
            raise Bad(path, f"no branch of the union takes a JSON {_json_type(v)}")

        return encode


def _zz(i: int) -> bytes:
    out = bytearray()
    _long(i, out)
    return bytes(out)


def _bytes(convert: Callable[[Any], bytes], path: str, size: int | None) -> Encode:
    def encode(v: Any, out: bytearray) -> None:
        data = convert(v)
        if size is None:
            _long(len(data), out)
        out += data

    return encode


def _converted_long(convert: Callable[[Any], Any], bounds: tuple[int, int], path: str) -> Encode:
    def encode(v: Any, out: bytearray) -> None:
        n = convert(v)
        if not _is_int(n, bounds):
            raise Bad(path, "out of range")
        _long(n, out)

    encode.convert = convert  # type: ignore[attr-defined]  (records inline the write)
    return encode


def _json_type(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(v), type(v).__name__)
