"""The kafka output's settings: the config model, librdkafka's defaults, and what is derived
from them (the transactional id, the admin clients' settings). Validation only, no I/O
beyond librdkafka's own check of the producer properties."""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

from confluent_kafka import KafkaException, Producer
from pydantic import Field, ValidationInfo, field_validator, model_validator

from connector.canary.config import CanaryConfig
from connector.fields import Strict
from connector.identity import Identity
from connector.otlp.mapping import LogMapping, MetricMapping, SpanMapping
from connector.otlp.signals import MAPPINGS
from connector.outputs.base import OutputConfig
from connector.outputs.kafka import schema, security

__all__ = [
    "DEFAULTS",
    "PLACEHOLDER",
    "QUIET",
    "SECRET_PROPERTY",
    "Config",
    "TimeField",
    "Transactions",
    "client_properties",
    "otlp_max_bytes",
    "transactional_id",
    "valid_topic",
]

# Lose nothing by default; the throughput settings are the ones bench/ measured.
DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 50,
    "compression.type": "lz4",
    "batch.size": 1_000_000,
    # Bound the local queue (librdkafka's default is 1 GiB): a full queue is backpressure.
    "queue.buffering.max.messages": 100_000,
    "queue.buffering.max.kbytes": 65_536,
    # a key lands where Java clients (Kafka Streams, Flink, ksqlDB) put it: co-partitioning
    "partitioner": "murmur2_random",
}
SECRET_PROPERTY = re.compile(r"password|secret|token|\.key$|key\.pem|jaas|oauthbearer\.config")
PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")

# the logger of clients made only to check or read something: their lines are not news
QUIET = logging.getLogger("connector.kafka.validate")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def valid_topic(name: str) -> bool:
    return bool(_TOPIC_NAME.fullmatch(name)) and name not in (".", "..")


class TimeField(Strict):
    field: str = Field(min_length=1, description="an ISO-8601 or epoch-milliseconds field")


class Transactions(Strict):
    id: str = Field(
        min_length=1,
        description="transactional.id; -r<i> (CONNECTOR_REPLICAS > 1) and -w<k> (--workers) "
        "are appended",
    )
    commit_every: float = Field(
        0.1, gt=0, description="seconds; then the transaction commits at the next call boundary"
    )
    marker_topic: str = Field(
        "__connector_checkpoints",
        min_length=1,
        description="compacted topic that holds each id's committed position (--checkpoint)",
    )

    @field_validator("marker_topic")
    @classmethod
    def _marker_topic_name(cls, value: str) -> str:
        if not valid_topic(value):
            raise ValueError(f"{value!r} is not a valid Kafka topic name")
        return value


class Config(OutputConfig):
    bootstrap_servers: str = Field(min_length=1)
    topic: str = Field(min_length=1, description="may hold {field} placeholders")
    key: str | None = Field(None, description="JSON field whose value keys each message")
    headers: dict[str, str] = Field(default_factory=dict)
    producer: dict[str, str | int | float | bool] = Field(default_factory=dict)
    encoding: Literal["raw", "otlp_proto", "otlp_json"] = "raw"
    connect_timeout: float = Field(30.0, gt=0)
    timestamp: Literal["now", "scheduled"] | TimeField = Field(
        "now",
        description="each record's time: now (when sent), scheduled (the produce() call's "
        "timestamp) or {field: NAME} (from the event)",
    )
    signal: Literal["traces", "logs", "metrics"] = Field(
        "traces", description="what the otlp encodings make of the events"
    )
    mapping: SpanMapping | LogMapping | MetricMapping | None = Field(
        None, validate_default=True, description="event fields -> OTLP fields (otlp encodings)"
    )
    transactions: Transactions | None = Field(
        None, description="atomic ticks: a read_committed consumer sees whole produce() calls"
    )
    verify: CanaryConfig | None = Field(
        None, description="the live canary: read acknowledged records back while running"
    )
    schema_registry: schema.Registry | None = None
    value_schema: schema.SchemaFile | None = None
    key_schema: schema.SchemaFile | None = Field(None, description="serializes the key field")
    subject_name_strategy: schema.SubjectStrategy = "topic"
    auto_register: bool = Field(True, description="false: the latest registered version")

    @field_validator("producer")
    @classmethod
    def _librdkafka_accepts(cls, value: dict) -> dict:
        if "bootstrap.servers" in value:
            raise ValueError(
                "'bootstrap.servers' is set by bootstrap_servers; remove it from producer"
            )
        if (problem := security.files_problem(value)) is not None:
            raise ValueError(problem)
        # librdkafka checks names, values and combinations (acks vs idempotence)
        # when a client is created; one with no brokers never connects.
        try:
            Producer({**DEFAULTS, **value}, logger=QUIET)
        except KafkaException as exc:
            message = exc.args[0].str()
            if not security.key_mismatch(message):  # a credential problem: the start says it
                raise ValueError(security.creation_problem(value, message)) from None
        return value

    @field_validator("topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        if not PLACEHOLDER.search(value) and not valid_topic(value):
            raise ValueError(
                f"{value!r} is not a valid Kafka topic name (letters, digits, '.', '_', '-'; "
                "at most 249)"
            )
        return value

    @field_validator("mapping", mode="wrap")
    @classmethod
    def _signal_mapping(cls, value: Any, handler: Any, info: ValidationInfo) -> Any:
        """Each signal has its own mapping model; only the otlp encodings read it."""
        if "signal" not in info.data:  # an invalid signal: that error alone says it
            return value
        signal = info.data["signal"]
        if value is None and (signal == "traces" or info.data.get("encoding") == "raw"):
            return MAPPINGS[signal]() if signal != "metrics" else None
        model = MAPPINGS[signal]
        if isinstance(value, model):
            return value
        return model.model_validate({} if value is None else value)

    @model_validator(mode="after")
    def _otlp_encodings_route_by_trace(self) -> Config:
        if self.encoding != "raw" and (PLACEHOLDER.search(self.topic) or self.key or self.headers):
            what = (
                "one message per trace, keyed by trace id"
                if self.signal == "traces"
                else "one message per batch and resource, keyed by service name"
            )
            raise ValueError(
                f"encoding {self.encoding} writes {what}: "
                "topic cannot use {field} placeholders, and key and headers do not apply"
            )
        if self.signal != "traces" and self.encoding == "raw":
            raise ValueError(f"signal {self.signal} needs encoding otlp_proto or otlp_json")
        return self

    @model_validator(mode="after")
    def _transactions_fit(self) -> Config:
        tx = self.transactions
        if tx is None:
            return self
        if "transactional.id" in self.producer:
            raise ValueError(
                "'transactional.id' is set by transactions.id; remove it from producer"
            )
        if self.encoding != "raw":
            raise ValueError("transactions need encoding raw (one message per event)")
        if str(self.producer.get("enable.idempotence", True)).lower() == "false":
            raise ValueError("transactions need enable.idempotence (leave it at its default)")
        timeout = float(self.producer.get("transaction.timeout.ms", 60_000)) / 1000
        if tx.commit_every >= timeout / 2:
            raise ValueError(
                f"transactions.commit_every ({tx.commit_every:g} s) must be well below "
                f"transaction.timeout.ms ({timeout:g} s): under half of it"
            )
        return self

    @model_validator(mode="after")
    def _schemas(self) -> Config:
        schema.check(self)
        return self

    def spans(self) -> SpanMapping | None:
        """raw records say nothing about spans; the otlp encodings do."""
        return self.mapping if self.signal == "traces" and self.encoding != "raw" else None

    def properties(self, transactional_id: str | None = None) -> dict[str, Any]:
        """librdkafka's settings: the defaults, the producer's, and the transactional id
        (the producer's own, from `transactional_id()`) when given."""
        extra = {} if transactional_id is None else {"transactional.id": transactional_id}
        return {**DEFAULTS, **self.producer, "bootstrap.servers": self.bootstrap_servers, **extra}


def transactional_id(config: Config, identity: Identity = Identity()) -> str:  # noqa: B008
    """transactions.id, made unique per replica (-r<i>, when there are several replicas) and
    per worker (-w<k>, under --workers): two producers with one id fence each other."""
    tid = config.transactions.id
    if identity.replicas > 1:
        tid += f"-r{identity.replica}"
    if identity.workers > 1:
        tid += f"-w{identity.worker}"
    return tid


def client_properties(config: Config) -> dict[str, Any]:
    """What an admin client or consumer needs from the producer's settings: the address
    and the security settings."""
    keep = ("security.", "sasl.", "ssl.", "socket.", "broker.", "client.id", "client.dns")
    return {
        "bootstrap.servers": config.bootstrap_servers,
        **{k: v for k, v in config.producer.items() if k.startswith(keep)},
    }


def otlp_max_bytes(config: Config) -> int:
    """The largest OTLP request one message may carry: the producer's message.max.bytes
    (librdkafka refuses a larger message with MSG_SIZE_TOO_LARGE) less room for the key
    (a trace id) and the record's own framing."""
    try:
        limit = int(config.properties().get("message.max.bytes", 1_000_000))
    except (TypeError, ValueError):
        limit = 1_000_000  # librdkafka refuses the value itself at start()
    return max(1, limit - 512)
