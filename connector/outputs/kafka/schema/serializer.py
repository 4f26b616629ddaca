"""Schema'd Kafka records: Avro or JSON Schema in the Confluent wire format.

Each record is a magic byte 0, the schema's registry id (4 bytes, big-endian) and the
payload. Schemas are registered (or looked up) once at start with confluent-kafka's
SchemaRegistryClient; per event the hot path is orjson's parse, a conversion of the
few JSON values Avro types differently (times, bytes), fastavro's schemaless writer with
the parsed schema and the 5-byte prefix: the same bytes confluent-kafka's AvroSerializer
writes, without its per-call rule and cache machinery. JSON Schema: a validator built
once from the schema, and orjson's compact JSON (what JSONSerializer writes).
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
import re
import struct
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from datetime import time as daytime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field, field_validator, model_validator

from connector.fields import ConfigPath, Strict
from connector.logs import add_secret, add_url_secrets, redact
from connector.outputs.base import OutputError

__all__ = [
    "Bad",
    "Mismatch",
    "Registry",
    "SchemaFile",
    "Serializer",
    "check",
    "connect",
    "load",
    "preload",
    "problems",
]

MAGIC = 0


class RegistryTls(Strict):
    ca_file: ConfigPath | None = Field(None, description="CA bundle that signs the registry")
    cert_file: ConfigPath | None = Field(None, description="client certificate (mutual TLS)")
    key_file: ConfigPath | None = Field(None, description="client key (mutual TLS)")


class Registry(Strict):
    url: str = Field(min_length=1, description="http(s)://host:port of the Schema Registry")
    basic_auth: str | None = Field(None, description="USER:PASSWORD, from ${VARS}")
    timeout: float = Field(10.0, gt=0, description="seconds to reach the registry at start")
    tls: RegistryTls | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        add_url_secrets(value)  # before any message can show it
        if not re.match(r"https?://[^/\s]", value):
            raise ValueError(f"{redact(value)!r} is not an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("basic_auth")
    @classmethod
    def _user_password(cls, value: str | None) -> str | None:
        if value is not None and ":" not in value:
            raise ValueError("expected USER:PASSWORD")
        return value

    def client_config(self, timeout: float | None = None) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "url": self.url,
            "timeout": max(1, math.ceil(timeout or self.timeout)),
            "max.retries": 0,  # connect() retries until schema_registry.timeout itself
        }
        if self.basic_auth:
            conf["basic.auth.user.info"] = self.basic_auth
        if self.tls:
            for key, path in (
                ("ssl.ca.location", self.tls.ca_file),
                ("ssl.certificate.location", self.tls.cert_file),
                ("ssl.key.location", self.tls.key_file),
            ):
                if path is not None:
                    conf[key] = str(path)
        return conf

    def register_secrets(self) -> None:
        if self.basic_auth:
            add_secret(self.basic_auth)
            add_secret(self.basic_auth.partition(":")[2])
        add_url_secrets(self.url)


class SchemaFile(Strict):
    format: Literal["avro", "json_schema"]
    path: ConfigPath

    @model_validator(mode="after")
    def _parses(self) -> SchemaFile:
        load(self)  # a ValueError names the file and what is wrong
        return self


SubjectStrategy = Literal["topic", "record", "topic_record"]


# -- schema files --------------------------------------------------------------------------
class Loaded:
    """A parsed schema: its text (as registered), record name and writer."""

    def __init__(self, fmt: str, text: str, source: str):
        self.format, self.text, self.source = fmt, text, source
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{source}: not JSON ({exc})") from None
        if fmt == "avro":
            import fastavro
            from fastavro.schema import SchemaParseException, UnknownType

            if isinstance(doc, str):  # a primitive: as confluent-kafka registers it
                self.text, doc = '{"type":' + text + "}", {"type": doc}
            try:
                self.parsed = fastavro.parse_schema(doc)
            except (SchemaParseException, UnknownType) as exc:
                raise ValueError(f"{source}: not a valid Avro schema: {exc}") from None
            except Exception as exc:  # fastavro trips over shapes it does not expect
                raise ValueError(
                    f"{source}: not a valid Avro schema: {type(exc).__name__}: {exc}"
                ) from None
            self.name = self.parsed.get("name") if isinstance(self.parsed, dict) else None
        else:
            from jsonschema.exceptions import SchemaError
            from jsonschema.validators import validator_for

            if not isinstance(doc, dict | bool):
                raise ValueError(f"{source}: a JSON Schema is an object")
            cls = validator_for(doc)
            try:
                cls.check_schema(doc)
            except SchemaError as exc:
                raise ValueError(f"{source}: not a valid JSON Schema: {exc.message}") from None
            except Exception as exc:
                raise ValueError(
                    f"{source}: not a valid JSON Schema: {type(exc).__name__}: {exc}"
                ) from None
            self.parsed = doc
            self.name = doc.get("title") if isinstance(doc, dict) else None

    @property
    def schema_type(self) -> str:
        return "AVRO" if self.format == "avro" else "JSON"


def load(spec: SchemaFile) -> Loaded:
    try:
        text = Path(spec.path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read schema file {spec.path}: {exc}") from None
    if not text:
        raise ValueError(f"{spec.path}: empty schema file")
    return Loaded(spec.format, text, str(spec.path))


def check(config) -> None:
    """The kafka output's schema keys, together (raises ValueError)."""
    if config.schema_registry is None:
        if config.value_schema or config.key_schema:
            raise ValueError("value_schema and key_schema need schema_registry")
        return
    if not (config.value_schema or config.key_schema):
        raise ValueError("schema_registry needs value_schema (or key_schema)")
    if config.encoding != "raw":
        raise ValueError(f"encoding {config.encoding} writes OTLP, not schema'd records")
    if config.key_schema and not config.key:
        raise ValueError("key_schema needs key: the event field that holds the key")
    if "{" in config.topic and config.subject_name_strategy != "record":
        raise ValueError(
            "a topic with {field} placeholders needs subject_name_strategy: record "
            "(subjects are registered once, at start)"
        )
    for part, spec in (("value", config.value_schema), ("key", config.key_schema)):
        if spec and config.subject_name_strategy != "topic" and not load(spec).name:
            raise ValueError(
                f"subject_name_strategy {config.subject_name_strategy} needs a named "
                f"{part} schema (Avro 'name', JSON Schema 'title')"
            )


def subject(config, part: str, loaded: Loaded) -> str:
    strategy = config.subject_name_strategy
    if strategy == "topic":
        return f"{config.topic}-{part}"
    if strategy == "record":
        return loaded.name
    return f"{config.topic}-{loaded.name}"


# -- JSON -> Avro ------------------------------------------------------------------------
class Mismatch(Exception):
    """An event the schema does not take: `reason` is bounded (schema names only), `detail`
    says what was wrong with which value (the dead letter's)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail if len(detail) <= 2000 else detail[:2000] + "..."


class Bad(Exception):
    def __init__(self, path: str, why: str):
        super().__init__(why)
        self.path, self.why = path, why


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)
_NUMBER = (int, float)


def _instant(scale: int, path: str) -> Callable[[Any], Any]:
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


def _date(path: str) -> Callable[[Any], Any]:
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


def _time_of_day(scale: int, path: str) -> Callable[[Any], Any]:
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


def _base64(path: str, size: int | None = None) -> Callable[[Any], Any]:
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


def _decimal(path: str) -> Callable[[Any], Any]:
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


_INSTANT = {
    "timestamp-millis": 1000,
    "timestamp-micros": 1_000_000,
    "local-timestamp-millis": 1000,
    "local-timestamp-micros": 1_000_000,
}
_PLAIN_STRING = {"string", "enum"}


class _Compiler:
    """Builds a converter per schema node; None where JSON values already fit."""

    def __init__(self, parsed: Any):
        self.named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
        self.records: dict[str, Callable | None] = {}

    def node(self, schema: Any, path: str) -> Callable[[Any], Any] | None:
        if isinstance(schema, str):
            if schema in self.named:
                return self.node(self.named[schema], path)
            return _base64(path) if schema == "bytes" else None
        if isinstance(schema, list):
            return self.union(schema, path)
        kind, logical = schema.get("type"), schema.get("logicalType")
        if logical in _INSTANT and kind == "long":
            return _instant(_INSTANT[logical], path)
        if logical == "date" and kind == "int":
            return _date(path)
        if logical in ("time-millis", "time-micros"):
            return _time_of_day(1000 if logical == "time-millis" else 1_000_000, path)
        if logical == "decimal" and kind in ("bytes", "fixed"):
            return _decimal(path)
        if kind == "bytes":
            return _base64(path)
        if kind == "fixed":
            return _base64(path, schema.get("size"))
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


# -- serializers ---------------------------------------------------------------------------
class Serializer:
    """One subject's writer: `serialize(value)` -> wire bytes, or raises Mismatch."""

    def __init__(self, loaded: Loaded, subject_name: str, schema_id: int):
        self.loaded, self.subject, self.schema_id = loaded, subject_name, schema_id
        self.header = struct.pack(">bI", MAGIC, schema_id)
        self.reason = f"does not match schema {subject_name}"
        if loaded.format == "avro":
            from connector.outputs.kafka.schema import avro

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

                self.converter = _Compiler(parsed).node(parsed, "")
                self._write = schemaless_writer
                self.serialize = self._fastavro
        else:
            from jsonschema.validators import validator_for

            self.validator = validator_for(loaded.parsed)(loaded.parsed)
            self.names = _property_names(loaded.parsed)
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
            from jsonschema.exceptions import best_match

            error = best_match(self.validator.iter_errors(value))
            parts = []
            for part in error.absolute_path:  # names from the schema only: a bounded reason
                if not isinstance(part, str) or part not in self.names:
                    break
                parts.append(part)
            if error.validator == "required" and isinstance(error.instance, dict):
                missing = next(
                    (n for n in error.validator_value if n not in error.instance), None
                )
                if isinstance(missing, str) and missing in self.names:
                    parts.append(missing)
            path = ".".join(parts)
            where = "/".join(map(str, error.absolute_path))
            raise Mismatch(self._field(path), f"at '{where}': {error.message}")
        return self.header + orjson.dumps(value)

    def text(self, wire: bytes) -> str:
        """A record back as JSON text (dead letters of records that failed after encoding)."""
        if not isinstance(wire, bytes) or wire[:5] != self.header:
            return _show(wire)
        if self.loaded.format != "avro":
            return wire[5:].decode("utf-8", "backslashreplace")
        from fastavro import schemaless_reader

        try:
            doc = schemaless_reader(io.BytesIO(wire[5:]), self.loaded.parsed, None)
            return orjson.dumps(doc, default=_plain).decode()
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


def _property_names(schema: Any) -> set[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    names.update(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return names


# -- the registry --------------------------------------------------------------------------
def preload(config):
    """The registry client for connect(), made when the output is built, with the rest of
    the program's imports: importing it costs about 0.8 s of CPU (OAuth and JOSE
    libraries) and making it 0.1 s (TLS context); no request is sent yet."""
    config.schema_registry.register_secrets()
    return _client(config.schema_registry)


def _client(registry: Registry, timeout: float | None = None):
    from confluent_kafka.schema_registry import SchemaRegistryClient

    # the HTTP client logs every request at INFO: a line per subject at each start
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)

    return SchemaRegistryClient(registry.client_config(timeout))


def _cause(exc: Exception) -> str:
    return redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def connect(config, client=None) -> tuple[Serializer | None, Serializer | None]:
    """Register (or look up) the value and key schemas; the serializers for them. Retries
    an unreachable registry until schema_registry.timeout, then raises OutputError."""
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    registry = config.schema_registry
    registry.register_secrets()
    client = client or _client(registry)
    deadline = time.monotonic() + registry.timeout
    out: list[Serializer | None] = []
    for part, spec in (("value", config.value_schema), ("key", config.key_schema)):
        if spec is None:
            out.append(None)
            continue
        loaded = load(spec)
        name = subject(config, part, loaded)
        while True:
            try:
                if config.auto_register:
                    candidate = Schema(loaded.text, loaded.schema_type)
                    schema_id = client.register_schema(name, candidate)
                else:
                    latest = client.get_latest_version(name)
                    schema_id = latest.schema_id
                    loaded = Loaded(loaded.format, latest.schema.schema_str, f"subject {name}")
                break
            except SchemaRegistryError as exc:
                what = "register" if config.auto_register else "find the latest version of"
                raise OutputError(
                    redact(
                        f"the schema registry at {registry.url} refused to {what} subject "
                        f"{name}: {exc.error_message} (HTTP {exc.http_status_code}, "
                        f"code {exc.error_code})"
                    )
                ) from None
            except ValueError as exc:  # the registered schema does not parse here
                raise OutputError(redact(str(exc))) from None
            except Exception as exc:  # connection refused, timeouts, TLS...
                if time.monotonic() >= deadline:
                    raise OutputError(
                        f"cannot reach the schema registry at {redact(registry.url)} within "
                        f"{registry.timeout:g}s ({_cause(exc)}); check schema_registry.url "
                        "and that the registry is up, or raise schema_registry.timeout"
                    ) from None
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        out.append(Serializer(loaded, name, schema_id))
    return out[0], out[1]


def problems(config, timeout: float = 5.0) -> tuple[list[str], list[str]]:
    """For `validate`: each schema against the latest version registered under its subject,
    when the registry answers (compatibility as the registry judges it). Returns the
    incompatibilities, and notes (a registry that does not answer)."""
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    registry = config.schema_registry
    found: list[str] = []
    notes: list[str] = []
    if registry is None:
        return found, notes
    registry.register_secrets()
    client = _client(registry, min(timeout, registry.timeout))
    for part, spec in (("value", config.value_schema), ("key", config.key_schema)):
        if spec is None:
            continue
        loaded = load(spec)
        name = subject(config, part, loaded)
        request = Schema(loaded.text, loaded.schema_type).to_dict()
        try:  # the REST call itself: test_compatibility() keeps only the yes/no, not why
            answer = client._rest_client.post(
                f"compatibility/subjects/{_quote(name)}/versions/latest?verbose=true",
                body=request,
            )
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:  # nothing registered yet: anything goes
                continue
            found.append(f"{part}_schema: the registry refused the check: {exc}")
            continue
        except Exception as exc:
            notes.append(
                f"schema registry at {redact(registry.url)} did not answer "
                f"({_cause(exc)}); compatibility not checked"
            )
            break
        if not answer.get("is_compatible", True):
            why = "; ".join(answer.get("messages") or []) or "no reason given"
            found.append(
                f"{part}_schema {spec.path} is incompatible with the latest version of "
                f"subject {name}: {why}"
            )
    return found, notes


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
