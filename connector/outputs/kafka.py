"""`kafka`: publish events to Kafka topics with a delivery callback for every event.

librdkafka does the batching, retries and (with idempotence) de-duplication;
this output only maps events to messages and accounts for each acknowledgement.
Callbacks are served by poll()/flush() on the pipeline's own thread, so they
never race the counters and never raise into librdkafka.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Literal

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer
from pydantic import Field, field_validator, model_validator

from connector.logs import add_secret
from connector.outputs.base import Acks, OutputConfig, OutputError
from connector.spans import SpanMapping

__all__ = ["DEFAULTS", "Config", "KafkaOutput", "build"]

log = logging.getLogger("connector.kafka")

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
}
_SECRET_PROPERTY = re.compile(r"password|secret|token|\.key$|key\.pem|jaas|oauthbearer\.config")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


_QUIET = logging.getLogger("connector.kafka.validate")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class Config(OutputConfig):
    bootstrap_servers: str = Field(min_length=1)
    topic: str = Field(min_length=1, description="may hold {field} placeholders")
    key: str | None = Field(None, description="JSON field whose value keys each message")
    headers: dict[str, str] = Field(default_factory=dict)
    producer: dict[str, str | int | float | bool] = Field(default_factory=dict)
    encoding: Literal["raw", "otlp_proto", "otlp_json"] = "raw"
    connect_timeout: float = Field(30.0, gt=0)
    mapping: SpanMapping = Field(
        default_factory=SpanMapping, description="event fields -> span fields (otlp encodings)"
    )

    @field_validator("producer")
    @classmethod
    def _librdkafka_accepts(cls, value: dict) -> dict:
        if "bootstrap.servers" in value:
            raise ValueError(
                "'bootstrap.servers' is set by bootstrap_servers; remove it from producer"
            )
        # librdkafka checks names, values and combinations (acks vs idempotence)
        # when a client is created; one with no brokers never connects.
        try:
            Producer({**DEFAULTS, **value}, logger=_QUIET)
        except KafkaException as exc:
            raise ValueError(exc.args[0].str()) from None
        return value

    @model_validator(mode="after")
    def _otlp_encodings_route_by_trace(self) -> Config:
        if self.encoding != "raw" and (_PLACEHOLDER.search(self.topic) or self.key or self.headers):
            raise ValueError(
                f"encoding {self.encoding} writes one message per trace, keyed by trace id: "
                "topic cannot use {field} placeholders, and key and headers do not apply"
            )
        return self

    def properties(self) -> dict[str, Any]:
        return {**DEFAULTS, **self.producer, "bootstrap.servers": self.bootstrap_servers}


def _template(text: str):
    """A function event-dict -> str for `{field}` templates, or None for plain text."""
    fields = _PLACEHOLDER.findall(text)
    if not fields:
        return None

    def render(doc: dict) -> str:
        return _PLACEHOLDER.sub(lambda m: _text(_field(doc, m.group(1))), text)

    return render


def _field(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            raise LookupError(f"field '{path}' is missing")
        doc = doc[part]
    if doc is None:
        raise LookupError(f"field '{path}' is null")
    return doc


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class KafkaOutput:
    def __init__(self, config: Config, acks: Acks):
        self.config = config
        self.acks = acks
        self.producer: Producer | None = None
        self.topic = _template(config.topic)
        self.headers = {k: (_template(v), v) for k, v in config.headers.items()}
        self.needs_fields = bool(
            self.topic or config.key or any(t for t, _ in self.headers.values())
        )
        self.encoder = None
        if config.encoding != "raw":
            from connector.spans import otlp_encoder  # only trace users pay for the OTLP import

            self.encoder = otlp_encoder(config.encoding, config.mapping)
        for name, value in config.producer.items():
            if _SECRET_PROPERTY.search(name):
                add_secret(str(value))

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self.producer = Producer(self.config.properties(), logger=log, error_cb=self._on_error)
        timeout = self.config.connect_timeout
        deadline = time.monotonic() + timeout
        while True:  # librdkafka reconnects by itself; ask again until the deadline
            try:
                self.producer.list_topics(timeout=min(5.0, max(0.1, deadline - time.monotonic())))
                return
            except KafkaException as exc:
                if time.monotonic() >= deadline:
                    raise OutputError(
                        f"cannot reach Kafka at {self.config.bootstrap_servers} within "
                        f"{timeout:g}s ({exc.args[0].str()}); check bootstrap_servers and "
                        "that the broker is up, or raise connect_timeout"
                    ) from None

    def ready(self) -> bool:
        producer = self.producer  # close() may clear it from another thread
        if producer is None:
            return False
        try:
            producer.list_topics(timeout=1.0)
            return True
        except KafkaException:
            return False

    def poll(self) -> None:
        self.producer.poll(0)

    def flush(self, timeout: float) -> int:
        if self.producer is None:
            return 0
        return self.producer.flush(timeout)

    def close(self) -> None:
        """Give up on what is still queued: each purged event is reported failed."""
        if self.producer is None:
            return
        if len(self.producer):
            self.producer.purge(in_queue=True, in_flight=True)
            self.producer.flush(1.0)  # serves the purge callbacks
        self.producer = None

    # -- the hot path ----------------------------------------------------------
    def write_batch(self, events: list[str]) -> None:
        if self.encoder is not None:
            self._write_otlp(events)
            return
        produce, on_delivery = self.producer.produce, self._on_delivery
        if not self.needs_fields:
            topic = self.config.topic
            headers = list(self.config.headers.items()) or None
            extra = {"headers": headers} if headers else {}  # no kwarg to parse per message
            for event in events:
                try:
                    produce(topic, event, on_delivery=on_delivery, **extra)
                except BufferError:
                    self._produce_when_room(topic, event, None, headers)
                except KafkaException as exc:  # refused up front (too large, bad topic...)
                    self._refused(exc, topic, None, [event])
        else:
            for event in events:
                try:
                    topic, key, headers = self._route(event)
                except (orjson.JSONDecodeError, LookupError) as exc:
                    self.acks.fail(_reason(exc), event, topic=self.config.topic)
                    continue
                try:
                    produce(topic, event, key, on_delivery=on_delivery, headers=headers)
                except BufferError:
                    self._produce_when_room(topic, event, key, headers)
                except KafkaException as exc:
                    self._refused(exc, topic, key, [event])
        self.producer.poll(0)

    def _route(self, event: str) -> tuple[str, str | None, list | None]:
        doc = orjson.loads(event)
        if not isinstance(doc, dict):
            raise LookupError("event is not a JSON object")
        topic = self.topic(doc) if self.topic else self.config.topic
        key = _text(_field(doc, self.config.key)) if self.config.key else None
        headers = [(k, t(doc) if t else v) for k, (t, v) in self.headers.items()] or None
        return topic, key, headers

    def _write_otlp(self, events: list[str]) -> None:
        # One message per trace, keyed by trace id (what OTLP Kafka receivers read).
        for trace_id, payload, members in self.encoder(events, self.acks.fail):
            self._produce_when_room(self.config.topic, payload, trace_id, None, members)
        self.producer.poll(0)

    def _produce_when_room(self, topic, value, key, headers, members=None) -> None:
        """Backpressure: the local queue is full, so serve callbacks until there is room."""
        callback = self._on_delivery if members is None else self._group_callback(members)
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=callback, headers=headers)
                return
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                self._refused(exc, topic, key, members or [value])
                return

    def _refused(self, exc: KafkaException, topic: str, key, events: list) -> None:
        reason = _delivery_reason(exc.args[0])
        for event in events:
            self.acks.fail(reason, event, topic=topic, key=key)

    def _on_delivery(self, err: KafkaError | None, msg) -> None:
        if err is None:
            self.acks.delivered += 1
            latency = msg.latency()
            if latency is not None:
                self.acks.latency.observe(latency)
        else:
            self.acks.fail(
                _delivery_reason(err), msg.value(), topic=msg.topic(), key=_decode(msg.key())
            )

    def _group_callback(self, events: list[str]):
        """One Kafka message carrying several events (OTLP encodings): ack them together."""

        def on_delivery(err: KafkaError | None, msg) -> None:
            if err is None:
                self.acks.delivered += len(events)
                if (latency := msg.latency()) is not None:
                    self.acks.latency.observe_many(latency, len(events))
            else:
                reason = _delivery_reason(err)
                for event in events:
                    self.acks.fail(reason, event, topic=msg.topic(), key=_decode(msg.key()))

        return on_delivery

    def _on_error(self, err: KafkaError) -> None:
        # Client-wide trouble (all brokers down...): librdkafka keeps retrying; say so.
        log.warning("kafka %s: %s", self.config.bootstrap_servers, err.str())


def _reason(exc: Exception) -> str:
    if isinstance(exc, orjson.JSONDecodeError):
        return "not JSON (needed for topic/key/header fields)"
    return str(exc.args[0]) if exc.args else str(exc)


def _delivery_reason(err: KafkaError) -> str:
    if err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
        return "undelivered at the flush deadline (flush_timeout)"
    return f"{err.name()}: {err.str()}"


def _decode(key: bytes | None) -> str | None:
    return key.decode("utf-8", "backslashreplace") if key is not None else None


def build(config: Config, acks: Acks) -> KafkaOutput:
    return KafkaOutput(config, acks)
