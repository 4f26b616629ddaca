"""The kafka output as the pipeline sees it: one object that connects, reports readiness,
hands batches to the sink (or to the transactions around it) and shuts down.

It owns the producer's lifecycle; the produce hot path is sink.py's, the transactions are
transactions.py's, and the committed position is the marker-topic store's (positions.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from confluent_kafka import KafkaError, KafkaException, Producer

from connector.logs import add_secret, redact
from connector.outputs.base import Acks, Batch, BuildContext, Connecting, OutputError
from connector.outputs.kafka import schema, security
from connector.outputs.kafka.client_log import ClientLog, strip
from connector.outputs.kafka.config import (
    SECRET_PROPERTY,
    Config,
    otlp_max_bytes,
    transactional_id,
)
from connector.outputs.kafka.positions import MarkerTopicStore
from connector.outputs.kafka.recording import canary, record_to
from connector.outputs.kafka.security import Diagnosis
from connector.outputs.kafka.sink import KafkaSink
from connector.outputs.kafka.transactions import TransactionalSink

if TYPE_CHECKING:
    from connector.manifest import ManifestWriter

__all__ = ["KafkaOutput"]


class KafkaOutput:
    """Its capabilities (outputs/base.py): `wants_times` with `timestamp: scheduled`; with
    transactions configured, `wants_calls` and `transactional` (each batch brings the
    position it reaches, and `positions()` is the marker-topic store when built with
    positions); and it waits for room in librdkafka's queue until `stop_within`'s end."""

    def __init__(self, config: Config, acks: Acks, context: BuildContext | None = None):
        context = context or BuildContext()
        self.config, self.acks = config, acks
        self.wants_times = config.timestamp == "scheduled"  # batches bring `times`
        self.registry = schema.preload(config) if config.schema_registry is not None else None
        encoder = None
        if config.encoding != "raw":
            from connector.otlp.codec import otlp_encoder  # only OTLP users pay for protobuf

            encoder = otlp_encoder(
                config.encoding, config.mapping, otlp_max_bytes(config), config.signal
            )
        for name, value in config.producer.items():
            if SECRET_PROPERTY.search(name):
                add_secret(str(value))
        self.client_log = ClientLog(acks)
        self.sink = KafkaSink(config, acks, self.client_log, encoder)
        self._ready = (0.0, False, -1)  # (good until, ready, deliveries seen then)
        self.transactions: TransactionalSink | None = None
        self.store: MarkerTopicStore | None = None
        self.transactional = self.wants_calls = config.transactions is not None
        if self.transactional:
            self.store = MarkerTopicStore(config, transactional_id(config, context.identity))
            self.transactions = TransactionalSink(self.sink, self.store, context.positions)
        self.canary = None  # the live canary (`verify:`), started with the output
        if config.verify is not None:
            self.canary = canary(config, self.sink, self.transactions)

    @property
    def producer(self) -> Producer | None:
        return self.sink.producer

    @producer.setter
    def producer(self, producer: Producer | None) -> None:
        self.sink.producer = producer

    def record_to(self, writer: ManifestWriter, name: str) -> None:
        """--manifest: each acknowledged record's offset and hash (recording.py)."""
        record_to(self.config, self.sink, self.transactions, writer, name)

    def positions(self) -> MarkerTopicStore | None:
        """Where the committed positions are (built with positions: --checkpoint)."""
        return self.store if self.transactions is not None and self.transactions.positions else None

    @property
    def transactional_id(self) -> str | None:
        return self.store.transactional_id if self.store is not None else None

    @property
    def fatal(self) -> str | None:
        """Fenced: the message (the output never works again)."""
        return self.transactions.fatal if self.transactions is not None else None

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        servers = self.config.bootstrap_servers
        if self.registry is not None:
            self.sink.value_schema, self.sink.key_schema = schema.connect(
                self.config, self.registry
            )
        diagnosis = Diagnosis(servers, self.config.producer)

        def on_error(err: KafkaError) -> None:  # the TLS story first, then the sink's
            diagnosis.saw(err)
            self.sink.on_error(err)

        properties = self.config.properties(self.transactional_id)
        try:
            self.producer = Producer(properties, logger=self.client_log, error_cb=on_error)
        except KafkaException as exc:  # a client key that is not the certificate's
            self.client_log.close()
            raise OutputError(
                redact(security.creation_problem(properties, exc.args[0].str()))
            ) from None
        connecting = Connecting(self.acks, servers, self.config.connect_timeout)
        while True:  # librdkafka reconnects by itself; ask again until the deadline
            try:
                self.producer.list_topics(timeout=min(1.0, max(0.1, connecting.left)))
                self.client_log.healthy += 1
                self.client_log.check()
                if self.transactions is not None:
                    self.transactions.start(connecting)
                self.client_log.probe = self._probe  # started: a warning is judged first
                if self.canary is not None:
                    self.canary.start()
                return
            except KafkaException as exc:
                failure = exc.args[0]
            self.producer.poll(0)  # serves the error and log callbacks: the real cause
            err = self.sink.last_error
            if err is not None and (err.fatal() or err.code() == KafkaError._AUTHENTICATION):
                self.client_log.close()
                raise OutputError(
                    redact(
                        f"authentication with Kafka at {servers} failed: {strip(err.str())}; "
                        "check security.protocol, sasl.mechanism, sasl.username and sasl.password"
                        if err.code() == KafkaError._AUTHENTICATION
                        else f"Kafka client failed for good: {strip(err.str())}"
                    )
                )
            trouble = diagnosis.verdict(connecting.timeout - connecting.left)
            if trouble is not None:  # TLS or a protocol mismatch: waiting will not help
                # the client's own lines (at debug) are what this explains: not repeated
                self.client_log.open.clear()
                self.producer = None  # nothing was produced; close() has nothing to report
                raise OutputError(redact(trouble))
            if not connecting.tick():
                self.client_log.close()
                cause = strip((err or failure).str())
                raise OutputError(
                    redact(
                        f"cannot reach Kafka at {servers} within {self.config.connect_timeout:g}s "
                        f"({cause}); check bootstrap_servers and that the broker is up, "
                        "or raise connect_timeout"
                    )
                )

    def _probe(self) -> bool:
        """A metadata answer now (the client log's rule, before it warns)."""
        producer = self.producer
        if producer is None:
            return False
        try:
            producer.list_topics(timeout=0.5)
        except KafkaException:
            return False
        return True

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

    def write_batch(self, batch: Batch) -> None:
        """Hand events over (see KafkaSink.write_batch). In transactions, whole calls, then
        the position they reach (see TransactionalSink.mark)."""
        transactions = self.transactions
        if transactions is None:
            self.sink.write_batch(batch.events, batch.times)
            return
        if batch.events:
            transactions.write_batch(batch.events, batch.times, batch.call_starts)
        if batch.position is not None:
            transactions.mark(batch.position)

    def stop_within(self, seconds: float) -> None:
        """Waiting for room in librdkafka's queue ends `seconds` from now."""
        self.sink.stop_deadline = time.monotonic() + seconds

    def poll(self) -> None:
        if self.transactions is not None:
            self.transactions.poll()
        else:
            self.sink.poll()

    def flush(self, timeout: float) -> int:
        """Wait for acknowledgements; the number of EVENTS still undelivered."""
        if self.producer is None:
            return max(0, self.acks.pending)
        deadline = time.monotonic() + timeout
        if self.transactions is not None:  # a commit flushes: nothing is left outside
            self.transactions.flush(deadline)
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
        if self.canary is not None:
            self.canary.stop()
        if self.transactions is not None:
            self.transactions.close()
        if len(producer):
            producer.purge(in_queue=True, in_flight=True)
            # purged messages are reported at once (no broker needed): serve every report,
            # so nothing is left for settle() to count without its value
            deadline = time.monotonic() + 5.0
            while self.acks.pending > 0 and len(producer) and time.monotonic() < deadline:
                producer.flush(0.1)
        self.client_log.close()
        self.producer = None
