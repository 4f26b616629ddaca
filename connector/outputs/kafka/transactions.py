"""Kafka transactions, wrapped around the sink: a read_committed consumer sees whole
produce() calls (the pipeline hands over whole calls and says where each begins).

A transaction's events stay pending until it commits, then count as delivered; an
abortable failure aborts it and sends its calls again, once, in a new one; a fatal one
(fenced) fails its events and stops the run (OutputFatal). With positions on, the
store's latest position is written in the transaction that holds the calls it covers.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from connector.delivery import NOT_SENT, Failure
from connector.logs import redact
from connector.outputs.base import Connecting, OutputError, OutputFatal
from connector.outputs.kafka import errors
from connector.outputs.kafka.client_log import strip
from connector.outputs.kafka.errors import FENCED, NOT_COMMITTED, UNFINISHED
from connector.outputs.kafka.positions import MarkerTopicStore
from connector.outputs.kafka.requests import TxFailed, Unfinished, retry_request
from connector.outputs.kafka.segments import Segment
from connector.outputs.kafka.sink import KafkaSink, RouteError, Stop

__all__ = ["Segment", "TransactionalSink"]


class TransactionalSink:
    """The sink, in transactions of whole calls. `positions`: write the store's position
    into each transaction (--checkpoint)."""

    def __init__(self, sink: KafkaSink, store: MarkerTopicStore, positions: bool = False):
        self.sink, self.store = sink, store
        self.config, self.acks = sink.config, sink.acks
        self.transactional_id = store.transactional_id
        self.positions = positions
        self.fatal: str | None = None  # fenced: the message (the output never works again)
        self._fatal_reason = ""
        self._open = False
        self._began = self._commit_at = 0.0
        self._segments: list[Segment] = []
        self._reason: Failure | None = None  # a delivery failure in the open transaction
        self._discard = False  # reports of an aborted transaction's messages: ignored
        self._marked = False  # mark() is called after each hand-off: it is the commit point
        self._wait_by: float | None = None  # flush()'s deadline for transaction requests
        self._timeout = 60.0  # transaction.timeout.ms, in seconds (read at start)
        self._by: float | None = None  # a step's commit and abort, together, end by then

    @property
    def producer(self):
        return self.sink.producer

    # -- the output's lifecycle ---------------------------------------------------
    def start(self, connecting: Connecting) -> None:
        """init_transactions (it aborts what an earlier producer with this id left open)."""
        while True:
            try:
                self.producer.init_transactions(max(0.1, min(5.0, connecting.left)))
                break
            except KafkaException as exc:
                err = exc.args[0]
            if err.fatal() or not err.retriable() or not connecting.tick():
                self.sink.client_log.close()
                raise OutputError(
                    redact(
                        f"cannot start transactions for transactional id "
                        f"{self.transactional_id!r} at {self.config.bootstrap_servers}: "
                        f"{strip(err.str())}"
                        + (
                            ""
                            if err.fatal() or not err.retriable()
                            else f" within {self.config.connect_timeout:g}s (connect_timeout); "
                            "a cluster with fewer brokers than its "
                            "transaction.state.log.replication.factor never answers"
                        )
                    )
                )
        self.sink.client_log.healthy += 1  # the coordinator answered
        self._timeout = float(self.config.properties().get("transaction.timeout.ms", 60_000))
        self._timeout /= 1000
        if self.positions:
            self.store.create_topic()

    def poll(self) -> None:
        try:
            self.producer.poll(0)
        except KafkaException as exc:  # a transactional producer's error surfaces here too
            if self.fatal is None and exc.args[0].fatal():
                self._run(_raise, TxFailed(exc.args[0], fatal=True))
        self.sink.client_log.check()
        if self.fatal is None:
            # between calls: a due transaction commits here, never waiting for the next tick
            err = self.sink.last_error
            if err is not None and err.fatal():
                self._run(_raise, TxFailed(err, fatal=True))
            elif self._open and time.monotonic() >= self._commit_at:
                self._run(self._commit)

    def flush(self, deadline: float) -> None:
        """Commit what is open, by `deadline` (a commit flushes: nothing is left outside)."""
        if self.fatal is not None:
            return
        self._wait_by = deadline
        try:  # an abort re-sends into a new transaction: commit that one too (twice at most)
            for _ in range(3):
                if not self._open and self.store.pending is None:
                    break
                self._run(self._commit)
        finally:
            self._wait_by = None

    def close(self) -> None:
        self._give_up(NOT_COMMITTED)

    # -- hand-offs ----------------------------------------------------------------
    def write_batch(self, events: list[str], times: list[int] | None, calls) -> None:
        if self.fatal is not None:  # fenced: the run is stopping, nothing more is sent
            self.acks.fail_all(self._fatal_reason, events, topic=self.config.topic)
            return
        segment = Segment(events, times, calls or [0], None)  # no call starts: one unit
        if self.sink.needs_fields:
            self._route_calls(segment)
        if segment.events:
            self._run(self._add, segment)
        # positions come through mark(), after this: a commit here could hold events whose
        # position is not written yet
        due = self._open and time.monotonic() >= self._commit_at
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
            self.store.save(position)
        if self._open and time.monotonic() >= self._commit_at:
            self._run(self._commit)

    def _run(self, step, *args) -> None:
        """Run a transaction step. An abortable failure aborts the transaction and sends its
        calls again in a new one (each call twice at most); a fatal one raises OutputFatal.
        Stopping or interrupted meanwhile: the open transaction is given up."""
        # a commit that cannot finish and the abort after it share one transaction timeout
        self._by = time.monotonic() + self._timeout
        try:
            while True:
                try:
                    step(*args)
                    return
                except TxFailed as exc:
                    if exc.fatal:
                        self._fence(exc.err, exc.cause)
                    step, args = self._abort, (exc.err, exc.consume)
        except Stop as exc:
            # a commit under way when the stop deadline passed may still land: say so
            self._give_up(UNFINISHED if isinstance(exc, Unfinished) else NOT_SENT)
            if exc.interrupted:
                raise KeyboardInterrupt from None
        except KeyboardInterrupt:
            self._give_up(NOT_SENT)
            raise
        finally:
            self._by = None

    def _add(self, segment: Segment) -> None:
        self._segments.append(segment)
        self._begin()
        self._send(segment)

    def _begin(self) -> None:
        if self._open:
            return
        try:
            self.producer.begin_transaction()
        except KafkaException as exc:
            raise TxFailed(exc.args[0], fatal=True) from None
        self._open = True
        self._began = time.monotonic()
        self._commit_at = self._began + self.config.transactions.commit_every

    def _send(self, segment: Segment) -> None:
        """Produce a segment's events into the open transaction. A call the client refuses
        an event of fails whole; if it had taken some of that call, the transaction aborts."""
        events, times, routes = segment.events, segment.times, segment.routes
        produce, callback = self.producer.produce, self._on_delivery
        topic, key, at = self.config.topic, None, 0
        headers = list(self.config.headers.items()) or None
        refused: dict[int, tuple[int, Failure]] = {}  # call -> (event, why)
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
                    self.sink.produce_when_room(
                        topic, value, key, headers, members, at=at, callback=callback
                    )
            except Stop:
                raise
            except Exception as exc:
                if isinstance(exc, KafkaException) and errors.txn_trouble(err := exc.args[0]):
                    raise TxFailed(err, fatal=err.fatal()) from None
                k = segment.call(i)
                refused[k] = (i, errors.produce_failure(exc))
                starts = segment.starts
                skip = starts[k + 1] if k + 1 < len(starts) else len(events)
        if refused:
            partial = any(i > segment.starts[k] for k, (i, _) in refused.items())
            segment.drop(refused, self.acks, self.config.topic)
            if partial:
                raise TxFailed(None, consume=False)

    def _route_calls(self, segment: Segment) -> None:
        """Route every event first: a call with an event that cannot be routed fails whole,
        before any of it reaches the transaction."""
        routes, bad = [], {}
        route = self.sink.route
        for i, event in enumerate(segment.events):
            try:
                routes.append(route(event))
            except RouteError as exc:
                routes.append(None)
                bad.setdefault(segment.call(i), (i, Failure(exc.reason, exc.detail)))
        segment.routes = routes
        if bad:
            segment.drop(bad, self.acks, self.config.topic)

    # -- commit and abort ---------------------------------------------------------
    def _commit(self) -> None:
        marker = self.store.pending
        if not self._open:
            if marker is None:
                return
            self._begin()  # a position to record and no events since: a transaction for it
        if marker is not None:
            try:
                self.store.produce(self.producer, marker, self._on_marker)
            except KafkaException as exc:
                raise TxFailed(exc.args[0], fatal=exc.args[0].fatal()) from None
        self._call(self.producer.commit_transaction)
        segments, self._segments = self._segments, []
        self._open, self._reason = False, None
        self.store.written(marker)
        self.acks.delivered += sum(len(segment.events) for segment in segments)
        self.acks.transactions["committed"] += 1
        self.acks.transaction_seconds.observe(time.monotonic() - self._began)

    def _deadline(self) -> float:
        """When a transaction request must end: the step's transaction timeout, at shutdown
        flush's deadline, and from a stop request the stop deadline (flush_timeout)."""
        deadline = self._by or time.monotonic() + self._timeout
        for other in (self._wait_by, self.sink.stop_deadline):
            if other is not None and other < deadline:
                deadline = other
        return deadline

    def _call(self, request) -> None:
        """A transaction request (commit, abort), asked again while it fails retriably, up
        to _deadline() (requests.py). Past the stop deadline, Unfinished."""
        retry_request(request, self._deadline, self.sink)

    def _abort(self, err: KafkaError | None, consume: bool = True) -> None:
        """Abort the open transaction and send its calls again in a new one; a call already
        sent twice fails, with the reason (a delivery failure's, else the transaction's)."""
        if self._reason is not None:
            why = self._reason
        elif err is not None:
            why = errors.code_failure(err)
        else:
            why = Failure("aborted")
        segments, self._segments = self._segments, []
        if self._open:
            self._discard = True
            try:
                self._call(self.producer.abort_transaction)
            except TxFailed as exc:  # cannot abort: the producer cannot go on
                self._segments = segments
                raise TxFailed(exc.err, fatal=True, cause=err) from None
            except Unfinished:
                self._segments = segments
                raise
            finally:
                self._drain()
            self._open = False
            self.acks.transactions["aborted"] += 1
        self._reason = None
        again = []
        for segment in segments:
            if consume:
                if segment.attempt >= 2:
                    self.acks.fail_all(
                        f"transaction failed: {why.reason}",
                        segment.events,
                        why.detail,
                        topic=self.config.topic,
                    )
                    continue
                segment.attempt += 1
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
            stop = self.sink.stop_deadline
            if stop is not None:
                deadline = min(deadline, max(stop, time.monotonic() + 0.1))
            while len(self.producer) and time.monotonic() < deadline:
                with contextlib.suppress(KafkaException):  # the abort's error, once more
                    self.producer.poll(0.05)
        finally:
            self._discard = False

    def _give_up(self, reason: str) -> None:
        """The open transaction will not commit: its events fail, and it is aborted."""
        segments, self._segments = self._segments, []
        for segment in segments:
            self.acks.fail_all(reason, segment.events, topic=self.config.topic)
        if self._open:
            self._open = False
            if self.fatal is None:
                self._discard = True
                stop = self.sink.stop_deadline
                wait = 2.0 if stop is None else max(0.1, min(2.0, stop - time.monotonic()))
                with contextlib.suppress(KafkaException):
                    self.producer.abort_transaction(wait)
                self._drain()

    def _fence(self, err: KafkaError | None, cause: KafkaError | None = None) -> None:
        """A fatal error: the events of the open transaction fail, OutputFatal stops the run.
        `cause`: the failure that the abort (err) could not recover from."""
        tid, text = self.transactional_id, strip(err.str()) if err is not None else "unknown"
        if cause is not None and not (err is not None and errors.fenced(err)):
            self._fatal_reason = "transaction failed for good: " + errors.code_failure(cause).reason
            message = (
                f"transactional id {tid!r}: the transaction could neither commit nor abort "
                f"within {self._timeout:g}s (transaction.timeout.ms; the broker stalled or "
                f"gone that long?): {strip(cause.str())}; the abort: {text}"
            )
        elif err is not None and errors.fenced(err):
            self._fatal_reason = FENCED
            message = (
                f"transactional id {tid!r} was fenced: another producer started with the same "
                f"id ({text}); give each connector its own transactions.id"
            )
        else:
            self._fatal_reason = "transaction failed for good: " + (
                errors.code_failure(err).reason if err is not None else "unknown"
            )
            message = f"transactional id {tid!r}: the Kafka producer failed for good: {text}"
        self.fatal = redact(message)
        self._give_up(self._fatal_reason)
        raise OutputFatal(self.fatal)

    # -- delivery reports (on the pipeline's thread, through poll) -------------------
    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        # counted at commit: here only the latency, and a failure's reason for the abort
        if err is None:
            latency = msg.latency()
            if latency is not None:
                self.acks.latency.observe(latency)
        elif not self._discard and self._reason is None:
            self._reason = errors.delivery_failure(err)

    def _on_marker(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None and not self._discard and self._reason is None:
            self._reason = errors.delivery_failure(err)


def _raise(exc: Exception) -> None:
    raise exc
