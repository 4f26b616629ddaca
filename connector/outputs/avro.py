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

from connector.outputs.schema import (
    _INSTANT,
    Bad,
    _base64,
    _date,
    _instant,
    _time_of_day,
)

__all__ = ["Unsupported", "encoder"]

Encode = Callable[[Any, bytearray], None]

_SMALL = [bytes([n]) for n in range(128)]
_FLOAT, _DOUBLE = struct.Struct("<f").pack, struct.Struct("<d").pack
_LONG = (-(2**63), 2**63)
_INT = (-(2**31), 2**31)


class Unsupported(Exception):
    """A schema this encoder does not cover (decimal, recursive types): use fastavro."""


def _varint(n: int, out: bytearray) -> None:
    """A zig-zagged value's varint bytes (n >= 0)."""
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


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
            return _bytes(_base64(path, schema["size"]), path, schema["size"])
        return self.primitive(kind, schema.get("logicalType"), path)

    def primitive(self, kind: str, logical: str | None, path: str) -> Encode:
        if logical == "decimal":
            raise Unsupported("decimal")
        if kind == "long" and logical in _INSTANT:
            return _converted_long(_instant(_INSTANT[logical], path), _LONG, path)
        if kind == "int" and logical == "date":
            return _converted_long(_date(path), _INT, path)
        if kind == "int" and logical == "time-millis":
            return _converted_long(_time_of_day(1000, path), _INT, path)
        if kind == "long" and logical == "time-micros":
            return _converted_long(_time_of_day(1_000_000, path), _LONG, path)
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
            return _bytes(_base64(path), path, None)
        else:
            raise Unsupported(f"type {kind}")
        return encode

    def record(self, schema: dict, path: str) -> Encode:
        name = schema.get("name", "")
        self.open.add(name)
        fields = []
        for f in schema["fields"]:
            where = f"{path}.{f['name']}" if path else f["name"]
            has_default = "default" in f
            fields.append((f["name"], self.node(f["type"], where), has_default, f.get("default")))
        self.open.discard(name)
        # a missing field with a default is written as the default, as fastavro does
        plain = [(n, e) for n, e, d, _ in fields]
        lenient = any(d for _, _, d, _ in fields)
        defaults = {n: v for n, _, d, v in fields if d}

        def encode(v: Any, out: bytearray) -> None:
            if type(v) is not dict:
                raise Bad(path, "expected an object")
            if lenient:
                for key, enc in plain:
                    if key in v:
                        enc(v[key], out)
                    elif key in defaults:
                        enc(defaults[key], out)
                    else:
                        raise Bad(f"{path}.{key}" if path else key, "missing")
                return
            try:
                for key, enc in plain:
                    enc(v[key], out)
            except KeyError as exc:
                key = exc.args[0]
                raise Bad(f"{path}.{key}" if path else key, "missing") from None

        return encode

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

    return encode


def _json_type(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(v), type(v).__name__)
