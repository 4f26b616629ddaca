"""`event: replay:` settings: which recording to play (one source), and how (fresh ids,
loops). Validation only: no file is opened and no broker asked here."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from connector.fields import FilePath, Strict

__all__ = [
    "JsonlSource",
    "KafkaSource",
    "LinesSource",
    "OtlpSource",
    "ReplayConfig",
]


class JsonlSource(Strict):
    """One JSON object per line; `time_field` holds its time (ISO-8601 or epoch number)."""

    path: FilePath
    time_field: str | None = Field(
        "timestamp", description="the field rewritten to the replay's time (null: none)"
    )
    id_fields: tuple[str, ...] = Field(
        ("trace_id", "span_id", "parent_span_id"),
        description="fields holding hex trace/span ids, renewed by new_ids",
    )


class LinesSource(Strict):
    """Plain text lines; the time is the first group of `pattern`, read with `format`."""

    path: FilePath
    pattern: str = Field(description="a regex whose first (or `ts`) group is the timestamp")
    format: str = Field(description="strptime/strftime format of that timestamp")

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
        if compiled.groups < 1:
            raise ValueError("the pattern needs a group around the timestamp: (...)")
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if "%" not in value:
            raise ValueError("expected a strptime format like '%Y-%m-%d %H:%M:%S'")
        return value


class OtlpSource(Strict):
    """OTLP JSON requests, one per line, as the Collector's file exporter (or an otlp_json
    Kafka topic) writes them; gzip is recognised by its magic bytes."""

    path: FilePath
    signal: Literal["traces", "logs", "metrics"] = "traces"


class KafkaSource(Strict):
    """A range of a topic: [start, end) per partition, as offsets or times."""

    bootstrap_servers: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    partitions: tuple[int, ...] | None = Field(None, description="default: all")
    start: int | datetime | Literal["earliest"] = "earliest"
    end: int | datetime | Literal["latest"] = "latest"
    read_committed: bool = False
    encoding: Literal["raw", "otlp_json", "otlp_proto", "avro", "json_schema", "protobuf"] = "raw"
    signal: Literal["traces", "logs", "metrics"] = "traces"
    time_field: str | None = "timestamp"
    id_fields: tuple[str, ...] = ("trace_id", "span_id", "parent_span_id")
    schema_registry: str | None = Field(
        None, description="URL: avro, json_schema and protobuf need it"
    )
    consumer: dict[str, str | int | float | bool] = Field(default_factory=dict)
    idle_timeout: float = Field(
        30.0, gt=0, description="seconds without a record before a partition's rest is given up"
    )

    @model_validator(mode="after")
    def _registry(self) -> KafkaSource:
        if self.encoding in ("avro", "json_schema", "protobuf") and not self.schema_registry:
            raise ValueError(f"encoding {self.encoding} needs schema_registry (its URL)")
        for key in ("bootstrap.servers", "group.id", "isolation.level"):
            if key in self.consumer:
                raise ValueError(f"'{key}' is set by the replay itself; remove it from consumer")
        return self


SOURCES = ("jsonl", "lines", "otlp", "kafka")


class ReplayConfig(Strict):
    jsonl: JsonlSource | None = None
    lines: LinesSource | None = None
    otlp: OtlpSource | None = None
    kafka: KafkaSource | None = None
    new_ids: bool = Field(False, description="fresh trace and span ids, consistently")
    loop: bool | int = Field(False, description="true: for ever; N: play the recording N times")
    group_traces: bool = Field(
        False, description="jsonl/kafka: consecutive spans of one trace_id are one record"
    )

    @model_validator(mode="after")
    def _one_source(self) -> ReplayConfig:
        given = [name for name in SOURCES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"name exactly one source ({', '.join(SOURCES)}), got {len(given)}"
            )
        if self.loop is not True and self.loop is not False and self.loop < 1:
            raise ValueError("loop: true, false, or a count of at least 1")
        return self

    @property
    def source_name(self) -> str:
        return next(name for name in SOURCES if getattr(self, name) is not None)

    @property
    def source_path(self) -> Path:
        """What names the recording in messages and in a checkpoint's fingerprint."""
        if self.kafka is not None:
            return Path(f"kafka:{self.kafka.topic}")
        return (self.jsonl or self.lines or self.otlp).path  # type: ignore[union-attr]

    @property
    def loops(self) -> int | None:
        """How many times the recording plays; None: for ever."""
        if self.loop is True:
            return None
        return 1 if self.loop is False else int(self.loop)
