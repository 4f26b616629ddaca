"""The produce hot path: route each event to its message, hand it to librdkafka, account for
its delivery report, and wait for room when the local queue is full (backpressure).

librdkafka does the batching, retries and (with idempotence) de-duplication. Delivery
reports are served by poll()/flush() on the pipeline's own thread, so the callbacks never
race the counters and never raise into librdkafka. The transactions (transactions.py)
wrap this sink and use its routing and its backpressure.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import KafkaError, Producer

from connector import values
from connector.delivery import NOT_SENT, not_sent
from connector.manifest.recorders import DRAIN
from connector.outputs.base import Acks
from connector.outputs.kafka import errors
from connector.outputs.kafka.client_log import ClientLog
from connector.outputs.kafka.config import PLACEHOLDER, Config, TimeField, valid_topic
from connector.outputs.kafka.errors import INVALID_TOPIC
from connector.outputs.kafka.schema import Mismatch, Serializer

if TYPE_CHECKING:
    from connector.manifest.recorders import KafkaRecorder

__all__ = ["KafkaSink", "RouteError", "Stop", "field", "message_time"]


class Stop(Exception):
    """Waiting for room ended without handing the event on (stop deadline), or was
    interrupted; `taken` says whether the client had accepted the event in hand."""

    def __init__(self, interrupted: bool, taken: bool):
        super().__init__(NOT_SENT)
        self.interrupted, self.taken = interrupted, taken


class RouteError(Exception):
    """An event that cannot become a message: `reason` is bounded, `detail` says more."""

    def __init__(self, reason: str, detail: str | None):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


class KafkaSink:
    """Events -> messages. `producer` is set by the output's start()."""

    def __init__(self, config: Config, acks: Acks, client_log: ClientLog, encoder=None):
        self.config, self.acks, self.client_log, self.encoder = config, acks, client_log, encoder
        self.producer: Producer | None = None
        self.topic = _template(config.topic)
        self.headers = {k: (_template(v), v) for k, v in config.headers.items()}
        self.time_field = (
            config.timestamp.field if isinstance(config.timestamp, TimeField) else None
        )
        self.schemas = config.schema_registry is not None
        self.value_schema: Serializer | None = None  # set by start()
        self.key_schema: Serializer | None = None
        self.needs_fields = bool(
            self.topic
            or config.key
            or any(t for t, _ in self.headers.values())
            or self.time_field
            or self.schemas
        )
        self.valid_topics: set[str] = set()  # routed topic names already checked
        self.last_error: KafkaError | None = None  # from the error callback (start's reason)
        # time.monotonic() past which waiting for room is over (the run is stopping)
        self.stop_deadline: float | None = None
        self.recorder: KafkaRecorder | None = None  # --manifest (record())
        self.trace_recorder = None  # --manifest, otlp trace encodings: (key, events) -> None

    def write_batch(self, events: list[str], times: list[int] | None = None) -> None:
        """Hand events to the client. If this raises (a second signal...), the events the
        client had not accepted have been failed first; the accepted ones settle through
        their callbacks. Past the stop deadline, the rest of the batch fails as not sent."""
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
                        self.produce_when_room(topic, event, None, headers, at=times and times[i])
                        taken = True
                    except Exception as exc:  # refused up front (too large, not UTF-8...)
                        taken = False
                        refused(exc, topic, None, [event])
                        taken = True
            else:
                for i, event in enumerate(events):
                    taken = False
                    try:
                        topic, key, headers, at, value = self.route(event)
                    except RouteError as exc:
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
                        self.produce_when_room(topic, value, key, headers, members, at=at)
                        taken = True
                    except Exception as exc:
                        taken = False
                        refused(exc, topic, key, [event])
                        taken = True
        except Stop as exc:  # stopping: the rest of the batch is not sent
            self.acks.fail_all(
                NOT_SENT, events[i + 1 if exc.taken else i :], topic=self.config.topic
            )
            if exc.interrupted:
                raise KeyboardInterrupt from None
            return
        except BaseException as exc:
            self.acks.fail_all(
                not_sent(exc), events[i + 1 if taken else i :], topic=self.config.topic
            )
            raise
        self.producer.poll(0)
        self.client_log.check()

    def poll(self) -> None:
        self.producer.poll(0)
        self.client_log.check()

    def route(self, event: str) -> tuple[str, str | bytes | None, list | None, int, Any]:
        """(topic, key, headers, timestamp, value) of an event's message; RouteError."""
        try:
            doc = values.loads(event)  # exact: a key past 64 bits is not rounded
        except orjson.JSONDecodeError as exc:
            raise RouteError(errors.json_reason(exc), None) from None
        if not isinstance(doc, dict):
            raise RouteError("event is not a JSON object", None)
        try:
            topic = self.topic(doc) if self.topic else self.config.topic
            key = _text(field(doc, self.config.key)) if self.config.key else None
            headers = [(k, t(doc) if t else v) for k, (t, v) in self.headers.items()] or None
            at = epoch_ms(field(doc, self.time_field), self.time_field) if self.time_field else 0
        except LookupError as exc:
            raise RouteError(str(exc.args[0]), None) from None
        except ValueError as exc:
            raise RouteError(exc.args[0], repr(field(doc, self.time_field))) from None
        if topic not in self.valid_topics:  # librdkafka names this differently each time
            if not valid_topic(topic):
                raise RouteError(INVALID_TOPIC, repr(topic))
            if len(self.valid_topics) > 10_000:  # bounded
                self.valid_topics.clear()
            self.valid_topics.add(topic)
        if not self.schemas:
            return topic, key, headers, at, event
        try:
            if self.key_schema is not None:
                key = self.key_schema.serialize(field(doc, self.config.key))
            value = self.value_schema.serialize(doc) if self.value_schema else event
        except Mismatch as exc:
            raise RouteError(exc.reason, exc.detail) from None
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
                at = message_time(members, scheduled, self.time_field)
                self.produce_when_room(self.config.topic, payload, key, None, members, at)
                done += members
                members = None
        except BaseException as exc:
            stop = exc if isinstance(exc, Stop) else None
            if members is not None and (stop.taken if stop else True):
                done += members  # the client took the message in hand
            left = Counter(events)
            left.subtract(done)
            reason = NOT_SENT if stop else not_sent(exc)
            self.acks.fail_all(reason, left.elements(), topic=self.config.topic)
            if stop and stop.interrupted:
                raise KeyboardInterrupt from None
            if stop:
                return
            raise
        self.producer.poll(0)
        self.client_log.check()

    def produce_when_room(
        self, topic, value, key, headers, members=None, at=0, callback=None
    ) -> None:
        """Backpressure: the local queue is full, so serve callbacks until there is room.
        Raises Stop past the stop deadline, or on an interrupt (KeyboardInterrupt).
        With `callback` (transactions), a refusal is raised, not accounted."""
        tx = callback is not None
        if callback is None:
            callback = self._on_delivery if members is None else self._group_callback(members)
        producer, check = self.producer, self.client_log.check
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
                stop = self.stop_deadline  # past it: no more waiting, room now or never
                if stop is not None and time.monotonic() >= stop:
                    raise Stop(interrupted=False, taken=False)
                producer.poll(0.05)
                check()
        except KeyboardInterrupt:
            raise Stop(interrupted=True, taken=taken) from None

    def _refused(self, exc: Exception, topic: str, key, events: list) -> None:
        failure = errors.produce_failure(exc)
        self.acks.fail_all(failure.reason, events, failure.detail, topic=topic, key=key)

    def record(self, recorder: KafkaRecorder) -> None:
        """--manifest: every delivered message is also kept by `recorder`."""
        self.recorder = recorder
        self._on_delivery = self._on_delivery_recorded

    def _on_delivery(self, err: KafkaError | None, msg) -> None:
        if err is None:
            self.acks.delivered += 1
            latency = msg.latency()
            if latency is not None:
                self.acks.latency.observe(latency)
        else:
            self._failed(err, msg)

    def _on_delivery_recorded(self, err: KafkaError | None, msg) -> None:
        # _on_delivery and the recorder's append in one frame: this runs once a message
        if err is None:
            self.acks.delivered += 1
            latency = msg.latency()
            if latency is not None:
                self.acks.latency.observe(latency)
            reports = self.recorder.reports
            reports.append(msg)
            if len(reports) >= DRAIN:
                self.recorder.drain()
        else:
            self._failed(err, msg)

    def _failed(self, err: KafkaError, msg) -> None:
        failure = errors.delivery_failure(err)
        value = msg.value()
        if self.value_schema is not None:  # the event as JSON again, not the Avro bytes
            value = self.value_schema.text(value)
        self.acks.fail(
            failure.reason, value, failure.detail, topic=msg.topic(), key=_decode(msg.key())
        )

    def _group_callback(self, events: list[str]):
        """One Kafka message carrying several events (OTLP encodings): ack them together."""

        def on_delivery(err: KafkaError | None, msg) -> None:
            if err is None:
                self.acks.delivered += len(events)
                if (latency := msg.latency()) is not None:
                    self.acks.latency.observe_many(latency, len(events))
                if self.recorder is not None:
                    self.recorder.add(msg)
                if self.trace_recorder is not None:
                    self.trace_recorder(msg.key(), events)
            else:
                failure = errors.delivery_failure(err)
                where = {"topic": msg.topic(), "key": _decode(msg.key())}
                self.acks.fail_all(failure.reason, events, failure.detail, **where)

        return on_delivery

    def on_error(self, err: KafkaError) -> None:
        # Client-wide trouble: librdkafka logs the same event through the log callback,
        # where ClientLog reports it once; here we only keep it for start()'s reason.
        self.last_error = err


def _template(text: str):
    """A function event-dict -> str for `{field}` templates, or None for plain text."""
    fields = PLACEHOLDER.findall(text)
    if not fields:
        return None

    def render(doc: dict) -> str:
        return PLACEHOLDER.sub(lambda m: _text(field(doc, m.group(1))), text)

    return render


def field(doc: Any, path: str) -> Any:
    """A dotted field of an event; LookupError when it is missing or null."""
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            raise LookupError(f"field '{path}' is missing")
        doc = doc[part]
    if doc is None:
        raise LookupError(f"field '{path}' is null")
    return doc


def _text(value: Any) -> str:
    return value if isinstance(value, str) else values.dumps(value)


def _decode(key: bytes | None) -> str | None:
    return key.decode("utf-8", "backslashreplace") if key is not None else None


def message_time(members: list[str], scheduled: dict | None, time_field: str | None) -> int:
    """A message of several events (a trace) takes its first event's time."""
    if scheduled is not None:
        return scheduled.get(members[0], 0)
    if time_field:
        try:
            return epoch_ms(field(orjson.loads(members[0]), time_field), time_field)
        except (LookupError, ValueError, orjson.JSONDecodeError):
            return 0  # the spans keep their own times; the record gets the send time
    return 0


def epoch_ms(value: Any, name: str) -> int:
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
