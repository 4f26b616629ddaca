"""`kafka`: publish events to Kafka topics with a delivery callback for every event.

librdkafka does the batching, retries and (with idempotence) de-duplication;
this output only maps events to messages and accounts for each acknowledgement.
Callbacks are served by poll()/flush() on the pipeline's own thread, so they
never race the counters and never raise into librdkafka. With `transactions`,
events are produced in Kafka transactions of whole produce() calls and count as
delivered when their transaction commits (see "transactions" below).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import os
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer
from pydantic import Field, ValidationInfo, field_validator, model_validator

from connector.fields import Strict
from connector.logs import add_secret, redact
from connector.otlp.mapping import LogMapping, MetricMapping, SpanMapping
from connector.otlp.signals import MAPPINGS
from connector.outputs.base import (
    NOT_SENT,
    Acks,
    Connecting,
    OutputConfig,
    OutputError,
    OutputFatal,
)
from connector.outputs.kafka import schema

__all__ = [
    "DEFAULTS",
    "Config",
    "KafkaOutput",
    "Transactions",
    "build",
    "schema_check",
    "schema_problems",
    "transactional_id",
    "warnings",
]

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
    # a key lands where Java clients (Kafka Streams, Flink, ksqlDB) put it: co-partitioning
    "partitioner": "murmur2_random",
}
_SECRET_PROPERTY = re.compile(r"password|secret|token|\.key$|key\.pem|jaas|oauthbearer\.config")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


_QUIET = logging.getLogger("connector.kafka.validate")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


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
        if not _valid_topic(value):
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
        # librdkafka checks names, values and combinations (acks vs idempotence)
        # when a client is created; one with no brokers never connects.
        try:
            Producer({**DEFAULTS, **value}, logger=_QUIET)
        except KafkaException as exc:
            raise ValueError(exc.args[0].str()) from None
        return value

    @field_validator("topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        if not _PLACEHOLDER.search(value) and not _valid_topic(value):
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
        if self.encoding != "raw" and (_PLACEHOLDER.search(self.topic) or self.key or self.headers):
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

    def properties(self) -> dict[str, Any]:
        extra = {}
        if self.transactions is not None:
            extra["transactional.id"] = transactional_id(self)
        return {**DEFAULTS, **self.producer, "bootstrap.servers": self.bootstrap_servers, **extra}


def transactional_id(config: Config, env: Any = None) -> str:
    """transactions.id, made unique per replica (-r<i>, when CONNECTOR_REPLICAS > 1) and per
    worker (-w<k>, when the workers set CONNECTOR_WORKER_INDEX): two producers with one id
    fence each other."""
    env = os.environ if env is None else env

    def number(name: str, default: int | None) -> int | None:
        value = env.get(name) or None
        if value is None:
            return default
        if not value.isdigit():
            raise ValueError(f"{name}={value!r} is not a whole number (transactions.id)")
        return int(value)

    tid = config.transactions.id
    if number("CONNECTOR_REPLICAS", 1) > 1:
        tid += f"-r{number('CONNECTOR_REPLICA_INDEX', 0)}"
    if (worker := number("CONNECTOR_WORKER_INDEX", None)) is not None:
        tid += f"-w{worker}"
    return tid


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


class _Stop(Exception):
    """Waiting for room ended without handing the event on (stop deadline), or was
    interrupted; `taken` says whether the client had accepted the event in hand."""

    def __init__(self, interrupted: bool, taken: bool):
        super().__init__(NOT_SENT)
        self.interrupted, self.taken = interrupted, taken


class KafkaOutput:
    def __init__(self, config: Config, acks: Acks):
        self.config = config
        self.acks = acks
        self.producer: Producer | None = None
        self.topic = _template(config.topic)
        self.headers = {k: (_template(v), v) for k, v in config.headers.items()}
        self.wants_times = config.timestamp == "scheduled"  # the pipeline passes `times`
        self.time_field = (
            config.timestamp.field if isinstance(config.timestamp, TimeField) else None
        )
        self.schemas = config.schema_registry is not None
        self.registry = schema.preload(config) if self.schemas else None
        self.value_schema: schema.Serializer | None = None  # set by start()
        self.key_schema: schema.Serializer | None = None
        self.needs_fields = bool(
            self.topic
            or config.key
            or any(t for t, _ in self.headers.values())
            or self.time_field
            or self.schemas
        )
        self.valid_topics: set[str] = set()  # routed topic names already checked
        self.encoder = None
        if config.encoding != "raw":
            from connector.otlp.codec import otlp_encoder  # only OTLP users pay for protobuf

            self.encoder = otlp_encoder(
                config.encoding, config.mapping, _otlp_max_bytes(config), config.signal
            )
        for name, value in config.producer.items():
            if _SECRET_PROPERTY.search(name):
                add_secret(str(value))
        self.client_log = ClientLog(acks)
        self.last_error: KafkaError | None = None  # from the error callback (start's reason)
        self._ready = (0.0, False, -1)  # (good until, ready, deliveries seen then)
        # -- transactions (see _write_tx) --
        tx = config.transactions
        self.transactional = self.wants_calls = tx is not None
        self.transactional_id: str | None = None
        self._id_error: str | None = None  # a bad CONNECTOR_* variable: start() says so
        if tx is not None:
            try:
                self.transactional_id = transactional_id(config)
            except ValueError as exc:
                self._id_error = str(exc)
        self.positions = False  # set by the pipeline under --checkpoint: write marker records
        self.fatal: str | None = None  # fenced: the message (the output never works again)
        self._tx_open = False
        self._tx_began = self._commit_at = 0.0
        self._segments: list[list] = []  # [events, times, call starts, attempt, routes]
        self._tx_reason: tuple[str, str | None] | None = None  # a delivery failure in it
        self._discard = False  # reports of an aborted transaction's messages: ignored
        self._marked = False  # mark() is called after each hand-off: it is the commit point
        self._marker: bytes | None = None  # the latest position, not yet committed
        self._wait_by: float | None = None  # flush()'s deadline for transaction requests
        self._tx_timeout = 60.0  # transaction.timeout.ms, in seconds (read at start)
        self._marker_ready = False
        self._fatal_reason = ""

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        if self._id_error is not None:
            raise OutputError(self._id_error)
        servers = self.config.bootstrap_servers
        if self.schemas:
            self.value_schema, self.key_schema = schema.connect(self.config, self.registry)
        self.producer = Producer(
            self.config.properties(), logger=self.client_log, error_cb=self._on_error
        )
        connecting = Connecting(self.acks, servers, self.config.connect_timeout)
        while True:  # librdkafka reconnects by itself; ask again until the deadline
            try:
                self.producer.list_topics(timeout=min(1.0, max(0.1, connecting.left)))
                self.client_log.healthy += 1
                self.client_log.check()
                if self.transactional:
                    self._init_transactions(connecting)
                return
            except KafkaException as exc:
                failure = exc.args[0]
            self.producer.poll(0)  # serves the error and log callbacks: the real cause
            err = self.last_error
            if err is not None and (err.fatal() or err.code() == KafkaError._AUTHENTICATION):
                self.client_log.close()
                raise OutputError(
                    redact(
                        f"authentication with Kafka at {servers} failed: {_strip(err.str())}; "
                        "check security.protocol, sasl.mechanism, sasl.username and sasl.password"
                        if err.code() == KafkaError._AUTHENTICATION
                        else f"Kafka client failed for good: {_strip(err.str())}"
                    )
                )
            if not connecting.tick():
                self.client_log.close()
                cause = _strip((err or failure).str())
                raise OutputError(
                    redact(
                        f"cannot reach Kafka at {servers} within {self.config.connect_timeout:g}s "
                        f"({cause}); check bootstrap_servers and that the broker is up, "
                        "or raise connect_timeout"
                    )
                )

    def ready(self) -> bool:
        """Cheap: the answer is kept 5 s, and deliveries since the last look are proof enough
        (a metadata request only when nothing was delivered)."""
        producer = self.producer  # close() may clear it from another thread
        if producer is None:
            return False
        now, (until, ready, seen) = time.monotonic(), self._ready
        if now < until:
            return ready
        delivered = self.acks.delivered
        if delivered == seen:
            try:
                producer.list_topics(timeout=1.0)
                ready = True
            except KafkaException:
                ready = False
        else:
            ready = True
        if ready:
            self.client_log.healthy += 1
        self._ready = (now + 5.0, ready, delivered)
        return ready

    def poll(self) -> None:
        if self.transactional:
            self._poll_tx()
            return
        self.producer.poll(0)
        self.client_log.check()

    def _poll_tx(self) -> None:
        try:
            self.producer.poll(0)
        except KafkaException as exc:  # a transactional producer's error surfaces here too
            if self.fatal is None and exc.args[0].fatal():
                self._run(_raise, _TxFailed(exc.args[0], fatal=True))
        self.client_log.check()
        if self.fatal is None:
            # between calls: a due transaction commits here, never waiting for the next tick
            err = self.last_error
            if err is not None and err.fatal():
                self._run(_raise, _TxFailed(err, fatal=True))
            elif self._tx_open and time.monotonic() >= self._commit_at:
                self._run(self._commit)

    def flush(self, timeout: float) -> int:
        """Wait for acknowledgements; the number of EVENTS still undelivered."""
        if self.producer is None:
            return max(0, self.acks.pending)
        deadline = time.monotonic() + timeout
        if self.transactional and self.fatal is None:
            self._wait_by = deadline
            try:  # an abort re-sends into a new transaction: commit that one too (twice at most)
                for _ in range(3):
                    if not self._tx_open and self._marker is None:
                        break
                    self._run(self._commit)
            finally:
                self._wait_by = None
        if self.transactional:  # a commit flushes: nothing is left outside a transaction
            return max(0, self.acks.pending)
        while True:
            left = deadline - time.monotonic()
            remaining = self.producer.flush(max(0.0, min(left, 1.0)))
            self.client_log.check()
            if not remaining or left <= 1.0:
                break
        return max(0, self.acks.pending)

    def close(self) -> None:
        """Give up on what is still queued: each purged event is reported failed."""
        producer = self.producer
        if producer is None:
            return
        if self.transactional:
            self._give_up(NOT_COMMITTED)
        if len(producer):
            producer.purge(in_queue=True, in_flight=True)
            # purged messages are reported at once (no broker needed): serve every report,
            # so nothing is left for settle() to count without its value
            deadline = time.monotonic() + 5.0
            while self.acks.pending > 0 and len(producer) and time.monotonic() < deadline:
                producer.flush(0.1)
        self.client_log.close()
        self.producer = None

    # -- the hot path ----------------------------------------------------------
    def write_batch(
        self, events: list[str], times: list[int] | None = None, calls: list[int] | None = None
    ) -> None:
        """Hand events to the client. If this raises (a second signal...), the events the
        client had not accepted have been failed first; the accepted ones settle through
        their callbacks. Past the stop deadline, the rest of the batch fails as not sent."""
        if self.transactional:
            self._write_tx(events, times, calls)
            return
        if self.encoder is not None:
            self._write_otlp(events, times)
            return
        produce, on_delivery, refused = self.producer.produce, self._on_delivery, self._refused
        # events[i] is the one in hand; `taken` says whether it is accounted for (the client
        # has it, or it failed). Set before the call, cleared first thing on failure: a
        # second signal can only surface after produce() returned, so this stays exact.
        i, taken = 0, False
        try:
            if not self.needs_fields:
                topic = self.config.topic
                headers = list(self.config.headers.items()) or None
                extra = {"headers": headers} if headers else {}  # no kwarg to parse per message
                for i, event in enumerate(events):
                    taken = True
                    try:
                        if times is None:
                            produce(topic, event, on_delivery=on_delivery, **extra)
                        else:
                            produce(
                                topic, event, on_delivery=on_delivery, timestamp=times[i], **extra
                            )
                    except BufferError:
                        taken = False
                        self._produce_when_room(topic, event, None, headers, at=times and times[i])
                        taken = True
                    except Exception as exc:  # refused up front (too large, not UTF-8...)
                        taken = False
                        refused(exc, topic, None, [event])
                        taken = True
            else:
                for i, event in enumerate(events):
                    taken = False
                    try:
                        topic, key, headers, at, value = self._route(event)
                    except _RouteError as exc:
                        self.acks.fail(exc.reason, event, exc.detail, topic=self.config.topic)
                        taken = True
                        continue
                    if times is not None:
                        at = times[i]
                    taken = True
                    try:
                        produce(
                            topic,
                            value,
                            key,
                            on_delivery=on_delivery,
                            headers=headers,
                            timestamp=at,
                        )
                    except BufferError:
                        taken = False
                        # a schema'd record: a failure's dead letter holds the event itself
                        members = None if value is event else [event]
                        self._produce_when_room(topic, value, key, headers, members, at=at)
                        taken = True
                    except Exception as exc:
                        taken = False
                        refused(exc, topic, key, [event])
                        taken = True
        except _Stop as exc:  # stopping: the rest of the batch is not sent
            self.acks.fail_all(
                NOT_SENT, events[i + 1 if exc.taken else i :], topic=self.config.topic
            )
            if exc.interrupted:
                raise KeyboardInterrupt from None
            return
        except BaseException as exc:
            self.acks.fail_all(
                _not_sent(exc), events[i + 1 if taken else i :], topic=self.config.topic
            )
            raise
        self.producer.poll(0)
        self.client_log.check()

    def _route(self, event: str) -> tuple[str, str | bytes | None, list | None, int, Any]:
        try:
            doc = orjson.loads(event)
        except orjson.JSONDecodeError as exc:
            raise _RouteError(_json_reason(exc), None) from None
        if not isinstance(doc, dict):
            raise _RouteError("event is not a JSON object", None)
        try:
            topic = self.topic(doc) if self.topic else self.config.topic
            key = _text(_field(doc, self.config.key)) if self.config.key else None
            headers = [(k, t(doc) if t else v) for k, (t, v) in self.headers.items()] or None
            at = _epoch_ms(_field(doc, self.time_field), self.time_field) if self.time_field else 0
        except LookupError as exc:
            raise _RouteError(str(exc.args[0]), None) from None
        except ValueError as exc:
            raise _RouteError(exc.args[0], repr(_field(doc, self.time_field))) from None
        if topic not in self.valid_topics:  # librdkafka names this differently each time
            if not _valid_topic(topic):
                raise _RouteError(INVALID_TOPIC, repr(topic))
            if len(self.valid_topics) > 10_000:  # bounded
                self.valid_topics.clear()
            self.valid_topics.add(topic)
        if not self.schemas:
            return topic, key, headers, at, event
        try:
            if self.key_schema is not None:
                key = self.key_schema.serialize(_field(doc, self.config.key))
            value = self.value_schema.serialize(doc) if self.value_schema else event
        except schema.Mismatch as exc:
            raise _RouteError(exc.reason, exc.detail) from None
        return topic, key, headers, at, value

    def _write_otlp(self, events: list[str], times: list[int] | None = None) -> None:
        # One message per trace keyed by trace id, or per batch and resource keyed by service
        # name (what OTLP Kafka receivers read).
        done: list[str] = []  # events failed by mapping, or in a message the client took
        fail = self.acks.fail

        def mapping_failed(reason, event, detail=None, **where):
            done.append(event)
            fail(reason, event, detail, **where)

        members = None  # the group in hand
        scheduled = dict(zip(events, times, strict=True)) if times is not None else None
        try:
            for key, payload, members in self.encoder(events, mapping_failed):
                at = self._message_time(members, scheduled)
                self._produce_when_room(self.config.topic, payload, key, None, members, at)
                done += members
                members = None
        except BaseException as exc:
            stop = exc if isinstance(exc, _Stop) else None
            if members is not None and (stop.taken if stop else True):
                done += members  # the client took the message in hand
            left = Counter(events)
            left.subtract(done)
            reason = NOT_SENT if stop else _not_sent(exc)
            self.acks.fail_all(reason, left.elements(), topic=self.config.topic)
            if stop and stop.interrupted:
                raise KeyboardInterrupt from None
            if stop:
                return
            raise
        self.producer.poll(0)
        self.client_log.check()

    def _message_time(self, members: list[str], scheduled: dict | None) -> int:
        """A message of several events (a trace) takes its first event's time."""
        if scheduled is not None:
            return scheduled.get(members[0], 0)
        if self.time_field:
            try:
                return _epoch_ms(_field(orjson.loads(members[0]), self.time_field), self.time_field)
            except (LookupError, ValueError, orjson.JSONDecodeError):
                return 0  # the spans keep their own times; the record gets the send time
        return 0

    def _produce_when_room(
        self, topic, value, key, headers, members=None, at=0, callback=None
    ) -> None:
        """Backpressure: the local queue is full, so serve callbacks until there is room.
        Raises _Stop past the stop deadline, or on an interrupt (KeyboardInterrupt).
        With `callback` (transactions), a refusal is raised, not accounted."""
        tx = callback is not None
        if callback is None:
            callback = self._on_delivery if members is None else self._group_callback(members)
        producer, acks, check = self.producer, self.acks, self.client_log.check
        taken = False
        try:
            while True:
                taken = True  # before the call: see write_batch
                try:
                    producer.produce(
                        topic, value, key, on_delivery=callback, headers=headers, timestamp=at or 0
                    )
                    return
                except BufferError:
                    taken = False
                except Exception as exc:
                    taken = False
                    if tx:
                        raise
                    self._refused(exc, topic, key, members or [value])
                    taken = True
                    return
                if acks.stopping:
                    raise _Stop(interrupted=False, taken=False)
                producer.poll(0.05)
                check()
        except KeyboardInterrupt:
            raise _Stop(interrupted=True, taken=taken) from None

    def _refused(self, exc: Exception, topic: str, key, events: list) -> None:
        reason, detail = _produce_reason(exc)
        self.acks.fail_all(reason, events, detail, topic=topic, key=key)

    def _on_delivery(self, err: KafkaError | None, msg) -> None:
        if err is None:
            self.acks.delivered += 1
            latency = msg.latency()
            if latency is not None:
                self.acks.latency.observe(latency)
        else:
            reason, detail = _delivery_reason(err)
            value = msg.value()
            if self.value_schema is not None:  # the event as JSON again, not the Avro bytes
                value = self.value_schema.text(value)
            self.acks.fail(reason, value, detail, topic=msg.topic(), key=_decode(msg.key()))

    def _group_callback(self, events: list[str]):
        """One Kafka message carrying several events (OTLP encodings): ack them together."""

        def on_delivery(err: KafkaError | None, msg) -> None:
            if err is None:
                self.acks.delivered += len(events)
                if (latency := msg.latency()) is not None:
                    self.acks.latency.observe_many(latency, len(events))
            else:
                reason, detail = _delivery_reason(err)
                self.acks.fail_all(
                    reason, events, detail, topic=msg.topic(), key=_decode(msg.key())
                )

        return on_delivery

    def _on_error(self, err: KafkaError) -> None:
        # Client-wide trouble: librdkafka logs the same event through the log callback,
        # where ClientLog reports it once; here we only keep it for start()'s reason.
        self.last_error = err

    # -- transactions ------------------------------------------------------------
    # A transaction holds whole produce() calls (the pipeline hands over whole calls and
    # says where each begins). Its events stay pending until it commits, then count as
    # delivered; an abortable failure aborts it and sends its calls again, once, in a new one.

    def _init_transactions(self, connecting: Connecting) -> None:
        while True:
            try:
                self.producer.init_transactions(max(0.1, min(5.0, connecting.left)))
                break
            except KafkaException as exc:
                err = exc.args[0]
            if err.fatal() or not err.retriable() or not connecting.tick():
                self.client_log.close()
                raise OutputError(
                    redact(
                        f"cannot start transactions for transactional id "
                        f"{self.transactional_id!r} at {self.config.bootstrap_servers}: "
                        f"{_strip(err.str())}"
                        + (
                            ""
                            if err.fatal() or not err.retriable()
                            else f" within {self.config.connect_timeout:g}s (connect_timeout); "
                            "a cluster with fewer brokers than its "
                            "transaction.state.log.replication.factor never answers"
                        )
                    )
                )
        self.client_log.healthy += 1  # the coordinator answered
        self._tx_timeout = float(self.config.properties().get("transaction.timeout.ms", 60_000))
        self._tx_timeout /= 1000
        if self.positions:
            self._ensure_marker_topic()

    def _write_tx(self, events: list[str], times: list[int] | None, calls) -> None:
        if self.fatal is not None:  # fenced: the run is stopping, nothing more is sent
            self.acks.fail_all(self._fatal_reason, events, topic=self.config.topic)
            return
        starts = calls or [0]  # without the call starts, the batch is one unit
        routes = None
        if self.needs_fields:
            events, times, starts, routes = self._route_calls(events, times, starts)
        if events:
            self._run(self._add, [events, times, starts, 1, routes])
        # positions come through mark(), after this: a commit here could hold events whose
        # position is not written yet
        due = self._tx_open and time.monotonic() >= self._commit_at
        if due and not (self._marked or self.positions):
            self._run(self._commit)

    def mark(self, position: dict) -> None:
        """Called after each hand-off: every call so far has been handed over. With
        `positions`, the position is written in the transaction that holds those calls;
        from the first mark on, a due transaction commits here, not in write_batch."""
        self._marked = True
        if self.fatal is not None or self.producer is None:
            return
        if self.positions:
            if not self._marker_ready:
                self._ensure_marker_topic()
            self._marker = orjson.dumps({"id": self.transactional_id, "position": position})
        if self._tx_open and time.monotonic() >= self._commit_at:
            self._run(self._commit)

    def committed_position(self) -> dict | None:
        """The last position committed for this transactional id (read_committed), or None.
        Call it after start(): init_transactions has aborted an old open transaction."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        topic, key = self.config.transactions.marker_topic, self.transactional_id.encode()
        timeout = self.config.connect_timeout
        consumer = Consumer(
            {
                **_client_properties(self.config),
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "enable.auto.commit": False,
                "group.id": f"connector-unused-{key.decode()}",  # assign() only: never joined
            },
            logger=_QUIET,
        )
        found = None
        try:
            meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                return None
            left = set(meta.partitions)
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in left])
            deadline = time.monotonic() + timeout
            while left:  # every partition up to its last committed record
                if time.monotonic() >= deadline:
                    raise OutputError(
                        f"cannot read the committed position of {self.transactional_id!r} "
                        f"from topic {topic} within {timeout:g}s (connect_timeout)"
                    )
                for msg in consumer.consume(1000, timeout=0.5):
                    if (err := msg.error()) is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            raise OutputError(f"cannot read topic {topic}: {_strip(err.str())}")
                        left.discard(msg.partition())
                    elif msg.key() == key:
                        found = msg.value()
        except KafkaException as exc:
            raise OutputError(f"cannot read topic {topic}: {_strip(exc.args[0].str())}") from None
        finally:
            consumer.close()
        return None if found is None else orjson.loads(found)["position"]

    def _ensure_marker_topic(self) -> None:
        """The positions live in a compacted topic, one record a transaction keyed by the
        transactional id: written with the events in one transaction, read back with
        read_committed by any client. (Offsets sent to a group would need a group and a
        partition per id, and hide the position in offset metadata.)"""
        from confluent_kafka.admin import AdminClient, NewTopic

        topic = self.config.transactions.marker_topic
        admin = AdminClient(_client_properties(self.config), logger=_QUIET)
        try:
            if topic not in admin.list_topics(timeout=self.config.connect_timeout).topics:
                settings = {"cleanup.policy": "compact", "segment.ms": "600000"}
                new = NewTopic(topic, num_partitions=1, replication_factor=-1, config=settings)
                try:
                    admin.create_topics([new], request_timeout=15)[topic].result(timeout=20)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise
        except KafkaException as exc:
            raise OutputError(
                f"cannot create the marker topic {topic} (transactions.marker_topic): "
                f"{_strip(exc.args[0].str())}"
            ) from None
        self._marker_ready = True

    def _run(self, step, *args) -> None:
        """Run a transaction step. An abortable failure aborts the transaction and sends its
        calls again in a new one (each call twice at most); a fatal one raises OutputFatal.
        Stopping or interrupted meanwhile: the open transaction is given up."""
        try:
            while True:
                try:
                    step(*args)
                    return
                except _TxFailed as exc:
                    if exc.fatal:
                        self._fence(exc.err)
                    step, args = self._abort, (exc.err, exc.consume)
        except _Stop as exc:
            self._give_up(NOT_SENT)
            if exc.interrupted:
                raise KeyboardInterrupt from None
        except KeyboardInterrupt:
            self._give_up(NOT_SENT)
            raise

    def _add(self, segment: list) -> None:
        self._segments.append(segment)
        self._begin()
        self._send(segment)

    def _begin(self) -> None:
        if self._tx_open:
            return
        try:
            self.producer.begin_transaction()
        except KafkaException as exc:
            raise _TxFailed(exc.args[0], fatal=True) from None
        self._tx_open = True
        self._tx_began = time.monotonic()
        self._commit_at = self._tx_began + self.config.transactions.commit_every

    def _send(self, segment: list) -> None:
        """Produce a segment's events into the open transaction. A call the client refuses
        an event of fails whole; if it had taken some of that call, the transaction aborts."""
        events, times, starts, _, routes = segment
        produce, callback = self.producer.produce, self._on_tx_delivery
        topic, key, at = self.config.topic, None, 0
        headers = list(self.config.headers.items()) or None
        refused: dict[int, tuple[int, str, str | None]] = {}  # call -> (event, reason, detail)
        skip = 0  # events before this index belong to a refused call
        for i, event in enumerate(events):
            if i < skip:
                continue
            value = event
            if routes is not None:
                topic, key, headers, at, value = routes[i]
            if times is not None:
                at = times[i]
            try:
                try:
                    produce(topic, value, key, on_delivery=callback, headers=headers, timestamp=at)
                except BufferError:
                    members = None if value is event else [event]  # a schema'd record
                    self._produce_when_room(
                        topic, value, key, headers, members, at=at, callback=callback
                    )
            except _Stop:
                raise
            except Exception as exc:
                if isinstance(exc, KafkaException) and _txn_trouble(err := exc.args[0]):
                    raise _TxFailed(err, fatal=err.fatal()) from None
                k = bisect.bisect_right(starts, i) - 1
                refused[k] = (i, *_produce_reason(exc))
                skip = starts[k + 1] if k + 1 < len(starts) else len(events)
        if refused:
            partial = any(i > starts[k] for k, (i, _, _) in refused.items())
            kept = self._drop_calls(events, times, starts, routes, refused)
            segment[0], segment[1], segment[2], segment[4] = kept
            if partial:
                raise _TxFailed(None, consume=False)

    def _route_calls(self, events: list[str], times, starts: list[int]):
        """Route every event first: a call with an event that cannot be routed fails whole,
        before any of it reaches the transaction."""
        routes, bad = [], {}
        route = self._route
        for i, event in enumerate(events):
            try:
                routes.append(route(event))
            except _RouteError as exc:
                routes.append(None)
                bad.setdefault(bisect.bisect_right(starts, i) - 1, (i, exc.reason, exc.detail))
        if not bad:
            return events, times, starts, routes
        return self._drop_calls(events, times, starts, routes, bad)

    def _drop_calls(self, events, times, starts, routes, bad: dict):
        """Fail the calls in `bad` (call index -> (event index, reason, detail)) whole, and
        return (events, times, starts, routes) of the other calls."""
        kept: list[str] = []
        kept_times = None if times is None else []
        kept_starts: list[int] = []
        kept_routes = None if routes is None else []
        ends = [*starts[1:], len(events)]
        fail = self.acks.fail
        for k, (start, end) in enumerate(zip(starts, ends, strict=True)):
            if k in bad:
                at, reason, detail = bad[k]
                sibling = f"event {at - start} of the call: {reason}"
                for j in range(start, end):
                    if j == at:
                        fail(reason, events[j], detail, topic=self.config.topic)
                    else:
                        fail(CALL_FAILED, events[j], sibling, topic=self.config.topic)
                continue
            kept_starts.append(len(kept))
            kept += events[start:end]
            if kept_times is not None:
                kept_times += times[start:end]
            if kept_routes is not None:
                kept_routes += routes[start:end]
        return kept, kept_times, kept_starts, kept_routes

    def _commit(self) -> None:
        if not self._tx_open:
            if self._marker is None:
                return
            self._begin()  # a position to record and no events since: a transaction for it
        marker = self._marker
        if marker is not None:
            self._produce_marker(marker)
        self._call(self.producer.commit_transaction)
        segments, self._segments = self._segments, []
        self._tx_open, self._tx_reason = False, None
        if self._marker is marker:
            self._marker = None
        self.acks.delivered += sum(len(segment[0]) for segment in segments)
        self.acks.transactions["committed"] += 1
        self.acks.transaction_seconds.observe(time.monotonic() - self._tx_began)

    def _produce_marker(self, marker: bytes) -> None:
        topic = self.config.transactions.marker_topic
        while True:
            try:
                self.producer.produce(
                    topic, marker, self.transactional_id, on_delivery=self._on_marker
                )
                return
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                raise _TxFailed(exc.args[0], fatal=exc.args[0].fatal()) from None

    def _call(self, request) -> None:
        """A transaction request (commit, abort), asked again while it only times out, up
        to the transaction timeout (at shutdown, flush's deadline)."""
        deadline = self._wait_by or time.monotonic() + self._tx_timeout
        while True:
            left = deadline - time.monotonic()
            try:
                request(max(0.1, min(left, 5.0)))
                return
            except KafkaException as exc:
                err = exc.args[0]
            if err.fatal():
                raise _TxFailed(err, fatal=True)
            if err.txn_requires_abort() or not err.retriable() or time.monotonic() >= deadline:
                raise _TxFailed(err)
            self.client_log.check()

    def _abort(self, err: KafkaError | None, consume: bool = True) -> None:
        """Abort the open transaction and send its calls again in a new one; a call already
        sent twice fails, with the reason (a delivery failure's, else the transaction's)."""
        if self._tx_reason is not None:
            reason, detail = self._tx_reason
        elif err is not None:
            reason, detail = _code_reason(err)
        else:
            reason, detail = "aborted", None
        segments, self._segments = self._segments, []
        if self._tx_open:
            self._discard = True
            try:
                self._call(self.producer.abort_transaction)
            except _TxFailed as exc:  # cannot abort: the producer cannot go on
                self._segments = segments
                raise _TxFailed(exc.err, fatal=True) from None
            finally:
                self._drain()
            self._tx_open = False
            self.acks.transactions["aborted"] += 1
        self._tx_reason = None
        again = []
        for segment in segments:
            if consume:
                if segment[3] >= 2:
                    self.acks.fail_all(
                        f"transaction failed: {reason}", segment[0], detail, topic=self.config.topic
                    )
                    continue
                segment[3] += 1
            again.append(segment)
        if again:
            self._segments = again
            self._begin()
            for segment in again:
                self._send(segment)

    def _drain(self) -> None:
        """Serve the reports of an aborted transaction's messages, ignoring them."""
        self._discard = True
        try:
            deadline = time.monotonic() + 5.0
            while len(self.producer) and time.monotonic() < deadline:
                with contextlib.suppress(KafkaException):  # the abort's error, once more
                    self.producer.poll(0.05)
        finally:
            self._discard = False

    def _give_up(self, reason: str) -> None:
        """The open transaction will not commit: its events fail, and it is aborted."""
        segments, self._segments = self._segments, []
        for segment in segments:
            self.acks.fail_all(reason, segment[0], topic=self.config.topic)
        if self._tx_open:
            self._tx_open = False
            if self.fatal is None:
                self._discard = True
                with contextlib.suppress(KafkaException):
                    self.producer.abort_transaction(2.0)
                self._drain()

    def _fence(self, err: KafkaError | None) -> None:
        """A fatal error: the events of the open transaction fail, OutputFatal stops the run."""
        tid, text = self.transactional_id, _strip(err.str()) if err is not None else "unknown"
        if err is not None and _fenced(err):
            self._fatal_reason = FENCED
            message = (
                f"transactional id {tid!r} was fenced: another producer started with the same "
                f"id ({text}); give each connector its own transactions.id"
            )
        else:
            self._fatal_reason = "transaction failed for good: " + (
                _code_reason(err)[0] if err is not None else "unknown"
            )
            message = f"transactional id {tid!r}: the Kafka producer failed for good: {text}"
        self.fatal = redact(message)
        self._give_up(self._fatal_reason)
        raise OutputFatal(self.fatal)

    def _on_tx_delivery(self, err: KafkaError | None, msg) -> None:
        # counted at commit: here only the latency, and a failure's reason for the abort
        if err is None:
            latency = msg.latency()
            if latency is not None:
                self.acks.latency.observe(latency)
        elif not self._discard and self._tx_reason is None:
            self._tx_reason = _delivery_reason(err)

    def _on_marker(self, err: KafkaError | None, msg) -> None:
        if err is not None and not self._discard and self._tx_reason is None:
            self._tx_reason = _delivery_reason(err)


def _otlp_max_bytes(config: Config) -> int:
    """The largest OTLP request one message may carry: the producer's message.max.bytes
    (librdkafka refuses a larger message with MSG_SIZE_TOO_LARGE) less room for the key
    (a trace id) and the record's own framing."""
    try:
        limit = int(config.properties().get("message.max.bytes", 1_000_000))
    except (TypeError, ValueError):
        limit = 1_000_000  # librdkafka refuses the value itself at start()
    return max(1, limit - 512)


def _epoch_ms(value: Any, name: str) -> int:
    """An event's time field as epoch milliseconds: ISO-8601 (naive: UTC) or a number."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            pass
        else:
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            return (when - _EPOCH) // timedelta(milliseconds=1)
    raise ValueError(f"field '{name}' is not an ISO-8601 time or epoch milliseconds")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _TxFailed(Exception):
    """A transaction request or produce failed: abort and send again, or (fatal) stop."""

    def __init__(self, err: KafkaError | None, fatal: bool = False, consume: bool = True):
        super().__init__(err)
        self.err, self.fatal, self.consume = err, fatal, consume


def _raise(exc: Exception) -> None:
    raise exc


_TXN_STATE = {KafkaError._STATE, KafkaError._FATAL, KafkaError._FENCED}
_FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED}


def _txn_trouble(err: KafkaError) -> bool:
    """produce() refused because of the transaction, not because of the message."""
    return err.fatal() or err.txn_requires_abort() or err.code() in _TXN_STATE


def _fenced(err: KafkaError) -> bool:
    return err.code() in _FENCED_CODES or "fenced" in err.str().lower()


def _client_properties(config: Config) -> dict[str, Any]:
    """What an admin client or consumer needs from the producer's settings: the address
    and the security settings."""
    keep = ("security.", "sasl.", "ssl.", "socket.", "broker.", "client.id", "client.dns")
    return {
        "bootstrap.servers": config.bootstrap_servers,
        **{k: v for k, v in config.producer.items() if k.startswith(keep)},
    }


class _RouteError(Exception):
    def __init__(self, reason: str, detail: str | None):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


class ClientLog:
    """librdkafka's log lines, reported by one rule (librdkafka calls `log()`).

    A warning or error is held as an open condition. It clears when the client shows it is
    healthy again (a delivery or a metadata answer after its last occurrence). One that
    clears within GRACE seconds is logged at DEBUG only (a broker still loading its
    coordinator on a fresh start); one still open after GRACE is logged once at WARNING
    with its repeat count, then `recovered after N s` at INFO. Repeats are only counted.
    Each event is logged once: the error callback logs nothing.
    """

    GRACE = 10.0
    REMIND = 60.0  # a condition still open says so again, with its count, this often

    def __init__(self, acks: Acks):
        self.acks = acks
        self.healthy = 0  # bumped on a metadata answer; deliveries count too
        self.open: dict[str, list] = {}  # key -> [first, last, count, message, warned at, health]
        self._next = 0.0

    def _health(self) -> int:
        return self.healthy + self.acks.delivered

    def log(self, level: int, fmt: str, *args) -> None:
        if len(args) == 3:
            fac, _name, message = args
        else:
            fac, message = "", fmt % args if args else fmt
        if level < logging.WARNING:
            client_log.debug("%s: %s %s", self.acks.name, fac, message)
            return
        if fac == "CONFWARN":  # a configuration warning never clears: say it now
            client_log.warning("%s: %s", self.acks.name, message)
            return
        now = time.monotonic()
        # by the message alone: librdkafka reports one event under several facilities
        # (FAIL, ERROR...), and it must be logged once
        key = _NUMBERS.sub("#", _strip(message))
        entry = self.open.get(key)
        if entry is None:
            if len(self.open) >= 100:  # bounded: a flood of distinct lines is coalesced
                key = "other client errors"
                entry = self.open.get(key)
            if entry is None:
                entry = self.open[key] = [now, now, 0, _strip(message), 0.0, 0]
                client_log.debug("%s: %s %s", self.acks.name, fac, message)
        entry[1], entry[2], entry[5] = now, entry[2] + 1, self._health()
        self.check(now)

    def check(self, now: float | None = None) -> None:
        """Promote, remind or clear open conditions (cheap when there are none)."""
        if not self.open:
            return
        now = now or time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.5
        health = self._health()
        for key, entry in list(self.open.items()):
            first, _last, count, message, warned, seen = entry
            if health != seen:
                del self.open[key]
                if warned:
                    client_log.info(
                        "%s: recovered after %d s: %s", self.acks.name, now - first, message
                    )
            elif now - first >= self.GRACE and now - warned >= self.REMIND:
                client_log.warning(
                    "%s: %s (%d time(s) in %d s)%s",
                    self.acks.name,
                    message,
                    count,
                    now - first,
                    "; still failing" if warned else "",
                )
                entry[4] = now

    def close(self) -> None:
        """At shutdown: a condition that never cleared is reported, however young."""
        self._next = 0.0
        self.check()
        for entry in self.open.values():
            first, _last, count, message, warned, _seen = entry
            if not warned:
                client_log.warning(
                    "%s: %s (%d time(s) in %d s, unresolved at shutdown)",
                    self.acks.name,
                    message,
                    count,
                    time.monotonic() - first,
                )
        self.open.clear()


client_log = logging.getLogger("connector.kafka.client")
_NUMBERS = re.compile(r"\d+")
_AFTER = re.compile(
    r"^\[thrd:[^\]]*\]: |\s*\(after \d+ms in state \w+(?:, \d+ identical error\(s\) suppressed)?\)"
)
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
INVALID_TOPIC = "invalid topic name (from the topic template)"
FENCED = "transaction fenced (another producer uses its transactional id)"
NOT_COMMITTED = "transaction not committed at shutdown"
CALL_FAILED = "another event of its produce() call failed (transactions)"
UTF8 = "cannot encode as UTF-8 (lone surrogate)"


def _strip(message: str) -> str:
    return _AFTER.sub("", message)


def _valid_topic(name: str) -> bool:
    return bool(_TOPIC_NAME.fullmatch(name)) and name not in (".", "..")


def _json_reason(exc: Exception) -> str:
    if "surrogates" in str(exc):
        return UTF8
    return "not JSON (needed for topic/key/header fields)"


def _not_sent(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return NOT_SENT
    return f"not sent: {type(exc).__name__}"


_DEFAULT_TEXT: dict[int, str] = {}


def _code_reason(err: KafkaError) -> tuple[str, str | None]:
    """A bounded reason for a client error (its name and the fixed text of its code), and
    the client's own message as the detail when it says more."""
    code = err.code()
    if code not in _DEFAULT_TEXT:
        _DEFAULT_TEXT[code] = KafkaError(code).str()
    reason = f"{err.name()}: {_DEFAULT_TEXT[code]}"
    text = err.str()
    return reason, (text if text != _DEFAULT_TEXT[code] else None)


def _produce_reason(exc: Exception) -> tuple[str, str | None]:
    if isinstance(exc, KafkaException):
        err = exc.args[0]
        if err.code() in (KafkaError._UNKNOWN_TOPIC, KafkaError.TOPIC_EXCEPTION):
            return INVALID_TOPIC if err.code() == KafkaError.TOPIC_EXCEPTION else (
                "unknown topic (does it exist? is auto-creation off?)"
            ), err.str()
        return _code_reason(err)
    if isinstance(exc, UnicodeEncodeError):
        return UTF8, str(exc)
    return f"cannot produce: {type(exc).__name__}", str(exc)


def _delivery_reason(err: KafkaError) -> tuple[str, str | None]:
    code = err.code()
    if code in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
        return "undelivered at the flush deadline (flush_timeout)", None
    if code == KafkaError._MSG_TIMED_OUT:  # sent, maybe written, never acknowledged
        return "timed out (possibly written)", err.str()
    if code == KafkaError._TIMED_OUT_QUEUE:
        return "timed out in the local queue (not sent)", err.str()
    if code == KafkaError.TOPIC_EXCEPTION:
        return INVALID_TOPIC, err.str()
    if code in (KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART):
        return "unknown topic (does it exist? is auto-creation off?)", err.str()
    return _code_reason(err)


def _decode(key: bytes | None) -> str | None:
    return key.decode("utf-8", "backslashreplace") if key is not None else None


def warnings(config: Config, first: datetime, last: datetime | None) -> list[str]:
    """Where records stamped with their own time would meet Kafka's time rules, for the
    window [first, last): retention deletes what is older, the broker refuses records too
    far ahead (message.timestamp.after.max.ms: 1 h by default in Kafka 4) or behind, and
    LogAppendTime overwrites the time. Reads the topic's configs; gives up after 5 s."""
    if config.timestamp == "now":
        return []
    where = "timestamp"
    if _PLACEHOLDER.search(config.topic):
        return [f"{where}: the topic is routed by fields; its time limits were not checked"]
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({**config.properties(), "socket.timeout.ms": 5000}, logger=_QUIET)
    try:
        if config.topic not in admin.list_topics(timeout=5).topics:
            return [
                f"{where}: topic {config.topic} does not exist yet, so its time limits "
                "(the broker's defaults when it is created) were not checked"
            ]
        resource = ConfigResource(ConfigResource.Type.TOPIC, config.topic)
        found = admin.describe_configs([resource], request_timeout=5)[resource].result(timeout=5)
    except Exception as exc:  # unreachable, not allowed to read configs...
        return [
            f"{where}: Kafka at {config.bootstrap_servers} did not answer within 5 s "
            f"({_strip(str(exc))}); the topic's time limits were not checked"
        ]
    values = {name: entry.value for name, entry in found.items()}
    now, out = datetime.now(UTC), []
    oldest, newest = first.astimezone(UTC), (last or now).astimezone(UTC)

    def limit(name: str) -> timedelta | None:  # -1 (or Long.MAX): no limit
        value = int(values.get(name) or -1)
        return timedelta(milliseconds=value) if 0 <= value < 2**62 else None

    topic = config.topic
    if values.get("message.timestamp.type") == "LogAppendTime":
        out.append(
            f"{where}: topic {topic} has message.timestamp.type=LogAppendTime: "
            "the broker overwrites every record's time with its own"
        )
    if (retention := limit("retention.ms")) is not None and oldest < now - retention:
        out.append(
            f"{where}: records from {oldest.isoformat()} are older than topic {topic}'s "
            f"retention.ms ({retention}): Kafka deletes them almost at once"
        )
    if (ahead := limit("message.timestamp.after.max.ms")) is not None and newest > now + ahead:
        out.append(
            f"{where}: records up to {newest.isoformat()} are more than {ahead} ahead of the "
            f"broker's clock (message.timestamp.after.max.ms): topic {topic} refuses them"
        )
    if (behind := limit("message.timestamp.before.max.ms")) is not None and oldest < now - behind:
        out.append(
            f"{where}: records from {oldest.isoformat()} are older than {behind} "
            f"(message.timestamp.before.max.ms): topic {topic} refuses them"
        )
    return out


def schema_problems(config: Config) -> tuple[list[str], list[str]]:
    """For `validate`: incompatibilities with the registered schemas, and notes."""
    return schema.problems(config)


def schema_check(config: Config):
    """For `preview`: a function event -> (reason, detail) when the schema'd record could not
    be written, None when it could; None when the output writes no schema'd records."""
    if config.schema_registry is None:
        return None
    value, key = (
        schema.Serializer(schema.load(spec), schema.subject(config, part, schema.load(spec)), 0)
        if spec
        else None
        for part, spec in (("value", config.value_schema), ("key", config.key_schema))
    )

    def check(event: str) -> tuple[str, str | None] | None:
        try:
            doc = orjson.loads(event)
        except orjson.JSONDecodeError as exc:
            return _json_reason(exc), None
        if not isinstance(doc, dict):
            return "event is not a JSON object", None
        try:
            if key is not None:
                key.serialize(_field(doc, config.key))
            if value is not None:
                value.serialize(doc)
        except LookupError as exc:
            return str(exc.args[0]), None
        except schema.Mismatch as exc:
            return exc.reason, exc.detail
        return None

    return check


def build(config: Config, acks: Acks) -> KafkaOutput:
    return KafkaOutput(config, acks)
