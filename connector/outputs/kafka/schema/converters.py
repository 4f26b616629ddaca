"""JSON values -> the Python values Avro writers take, for Avro's logical types: ISO-8601
times and dates to epoch units, base64 to bytes, numbers and numeric strings to decimals.

Each converter is built once per schema node, for a path (the field it names in a
failure), and raises Bad when a value does not fit. The strict encoder (avro.py) calls
them for its logical types; `Compiler` makes a converter for a whole schema, for the
fastavro writer that takes the schemas the strict encoder does not cover.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from datetime import time as daytime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "INSTANT",
    "Bad",
    "Compiler",
    "base64_bytes",
    "date_days",
    "decimal_number",
    "instant",
    "time_of_day",
]


class Bad(Exception):
    """A value the schema does not take: `path` is the field's (the schema's own names),
    `why` says what was expected."""

    def __init__(self, path: str, why: str):
        super().__init__(why)
        self.path, self.why = path, why


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)
_NUMBER = (int, float)


def instant(scale: int, path: str) -> Callable[[Any], Any]:
    per_day, per_second, micros = 86_400 * scale, scale, 1_000_000 // scale
    parse = datetime.fromisoformat  # takes "Z" since Python 3.11

    def convert(value: Any) -> Any:
        if type(value) is str:
            try:
                when = parse(value)
            except ValueError:
                raise Bad(path, "expected an ISO-8601 time or an epoch number") from None
            # naive: UTC; integer arithmetic, exact to the microsecond
            gap = (when if when.tzinfo else when.replace(tzinfo=UTC)) - _EPOCH
            return gap.days * per_day + gap.seconds * per_second + gap.microseconds // micros
        if type(value) is int:
            return value
        if type(value) is float and math.isfinite(value):
            return int(value)
        raise Bad(path, "expected an ISO-8601 time or an epoch number")

    return convert


def date_days(path: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return (date.fromisoformat(value) - _EPOCH_DAY).days
            except ValueError:
                pass
        raise Bad(path, "expected an ISO-8601 date or days since 1970-01-01")

    return convert


def time_of_day(scale: int, path: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                t = daytime.fromisoformat(value)
            except ValueError:
                pass
            else:
                micros = ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond
                return micros * scale // 1_000_000
        raise Bad(path, "expected an ISO-8601 time of day or a number")

    return convert


def base64_bytes(path: str, size: int | None = None) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, bytes):  # converted already (a key inside the value)
            return value
        if isinstance(value, str):
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise Bad(path, "expected base64") from None
            if size is not None and len(raw) != size:
                raise Bad(path, f"expected {size} bytes, base64 gives {len(raw)}")
            return raw
        raise Bad(path, "expected a base64 string")

    return convert


def decimal_number(path: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            return value
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            try:
                number = Decimal(str(value))
            except InvalidOperation:
                pass
            else:
                if number.is_finite():
                    return number
        raise Bad(path, "expected a decimal number or a numeric string")

    return convert


INSTANT = {
    "timestamp-millis": 1000,
    "timestamp-micros": 1_000_000,
    "local-timestamp-millis": 1000,
    "local-timestamp-micros": 1_000_000,
}
_PLAIN_STRING = {"string", "enum"}


class Compiler:
    """Builds a converter per schema node; None where JSON values already fit."""

    def __init__(self, parsed: Any):
        self.named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
        self.records: dict[str, Callable | None] = {}

    def node(self, schema: Any, path: str) -> Callable[[Any], Any] | None:
        if isinstance(schema, str):
            if schema in self.named:
                return self.node(self.named[schema], path)
            return base64_bytes(path) if schema == "bytes" else None
        if isinstance(schema, list):
            return self.union(schema, path)
        kind, logical = schema.get("type"), schema.get("logicalType")
        if logical in INSTANT and kind == "long":
            return instant(INSTANT[logical], path)
        if logical == "date" and kind == "int":
            return date_days(path)
        if logical in ("time-millis", "time-micros"):
            return time_of_day(1000 if logical == "time-millis" else 1_000_000, path)
        if logical == "decimal" and kind in ("bytes", "fixed"):
            return decimal_number(path)
        if kind == "bytes":
            return base64_bytes(path)
        if kind == "fixed":
            return base64_bytes(path, schema.get("size"))
        if kind == "record" or kind == "error":
            return self.record(schema, path)
        if kind == "array":
            items = self.node(schema["items"], path)
            return None if items is None else _each(items)
        if kind == "map":
            values = self.node(schema["values"], path)
            return None if values is None else _each_value(values)
        if isinstance(kind, dict | list):
            return self.node(kind, path)
        return None

    def record(self, schema: dict, path: str) -> Callable[[Any], Any] | None:
        name = schema.get("name", "")
        if name in self.records:  # recursive type: looked up when called
            return lambda value: (self.records[name] or _same)(value)
        self.records[name] = None
        fields = []
        for f in schema.get("fields", ()):
            where = f"{path}.{f['name']}" if path else f["name"]
            convert = self.node(f["type"], where)
            if convert is not None:
                fields.append((f["name"], convert))
        if not fields:
            return None

        def convert(value: Any) -> Any:
            if isinstance(value, dict):
                for key, to in fields:
                    if key in value:
                        value[key] = to(value[key])
            return value

        self.records[name] = convert
        return convert

    def union(self, branches: list, path: str) -> Callable[[Any], Any] | None:
        compiled = [(b, self.node(b, path)) for b in branches]
        if all(c is None for _, c in compiled):
            return None
        kinds = {self.kind(b) for b in branches}
        takes_string = bool(kinds & _PLAIN_STRING)
        converting = [c for _, c in compiled if c is not None]
        records = [(self.resolve(b), c) for b, c in compiled if self.kind(b) in ("record", "error")]

        def convert(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, dict):  # the first record branch with every key
                for schema, to in records:
                    names = {f["name"] for f in schema.get("fields", ())}
                    if value.keys() <= names:
                        return to(value) if to else value
                return value
            if isinstance(value, str) and takes_string:
                return value
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                if isinstance(value, _NUMBER) and kinds & {"int", "long", "float", "double"}:
                    return value
                for to in converting:
                    try:
                        return to(value)
                    except Bad:
                        continue
            return value  # the writer judges it

        return convert

    def resolve(self, schema: Any) -> Any:
        return self.named.get(schema, schema) if isinstance(schema, str) else schema

    def kind(self, schema: Any) -> str:
        schema = self.resolve(schema)
        if isinstance(schema, dict):
            if schema.get("logicalType"):
                return schema["logicalType"]
            kind = schema.get("type")
            return kind if isinstance(kind, str) else "complex"
        return schema if isinstance(schema, str) else "union"


def _same(value: Any) -> Any:
    return value


def _each(convert):
    return lambda value: [convert(v) for v in value] if isinstance(value, list) else value


def _each_value(convert):
    return lambda value: (
        {k: convert(v) for k, v in value.items()} if isinstance(value, dict) else value
    )
