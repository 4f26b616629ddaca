"""Schema files: the config keys that name them, reading and parsing them (Avro with
fastavro, JSON Schema checked against its metaschema, Protobuf compiled by protoc), the
kafka output's schema keys checked together, and the subject each schema is registered
under."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import orjson
from pydantic import model_validator

from connector.fields import FilePath, Strict

__all__ = ["Loaded", "SchemaFile", "SubjectStrategy", "check", "load", "subject"]


class SchemaFile(Strict):
    format: Literal["avro", "json_schema", "protobuf"]
    path: FilePath
    message: str | None = None  # protobuf: the message written (optional with only one)

    @model_validator(mode="after")
    def _parses(self) -> SchemaFile:
        if self.message is not None and self.format != "protobuf":
            raise ValueError("message is for format protobuf only")
        load(self)  # a ValueError names the file and what is wrong
        return self


SubjectStrategy = Literal["topic", "record", "topic_record"]


class Loaded:
    """A parsed schema: its text (as registered), record name and writer. A .proto file
    needs its folder (its imports) and file name, and the message written."""

    def __init__(
        self, fmt: str, text: str, source: str, proto: tuple[str, str, str | None] | None = None
    ):
        self.format, self.text, self.source, self.proto = fmt, text, source, proto
        if fmt == "protobuf":
            from connector.outputs.kafka.schema.proto_compile import compile_proto

            folder, name, message = proto or (".", "schema.proto", None)
            self.parsed = compile_proto(text, source, folder, name, message)
            self.name = self.parsed.full_name
            return
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
        return {"avro": "AVRO", "protobuf": "PROTOBUF"}.get(self.format, "JSON")


def load(spec: SchemaFile) -> Loaded:
    try:
        text = Path(spec.path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read schema file {spec.path}: {exc}") from None
    if not text:
        raise ValueError(f"{spec.path}: empty schema file")
    path = Path(spec.path)
    proto = (str(path.parent), path.name, spec.message) if spec.format == "protobuf" else None
    return Loaded(spec.format, text, str(spec.path), proto)


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
                f"{part} schema (Avro 'name', JSON Schema 'title', a Protobuf message)"
            )


def subject(config, part: str, loaded: Loaded) -> str:
    strategy = config.subject_name_strategy
    if strategy == "topic":
        return f"{config.topic}-{part}"
    if strategy == "record":
        return loaded.name
    return f"{config.topic}-{loaded.name}"
