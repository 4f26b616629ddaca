"""The shared OTLP sender: batches, a bounded queue, one thread that maps and exports.

Like the Collector's exporterhelper it wraps one `export(body)` function (gRPC or HTTP, any
signal): batching happens on the pipeline's thread; a sender thread maps each batch (the
native encoders read a whole batch without the GIL, beside the thread making events),
exports it through connector/delivery.py's `Retry` (retryable failures again with backoff,
throttled ones after the server's own delay: HTTP Retry-After, gRPC RetryInfo), and
acknowledges every event of a batch once: failed alone when it does not map, delivered
when the export succeeded, failed with the status when it did not.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from connector.delivery import (
    NOT_SENT,
    UNDELIVERED,
    Accounts,
    DeliveryError,
    Failure,
    Kind,
    Retry,
    RetryConfig,
    kind_of,
    not_sent,
)
from connector.otlp.batches import BatchConfig, Part, SendBatch, requests
from connector.otlp.signals import Codec, encode_all
from connector.otlp.wire import read

__all__ = [
    "ExportError",
    "Sender",
    "grpc_retry_delay",
]

log = logging.getLogger("connector.otlp")


class ExportError(DeliveryError):
    """An export failed: `reason` is bounded (gRPC code, HTTP status): it becomes a metric
    label. `delay`: the server's own retry delay in seconds, when it gave one (a retryable
    failure with a delay is throttled)."""

    def __init__(self, reason: str, retryable: bool, detail: str = "", delay: float | None = None):
        super().__init__(Failure(reason, detail, kind_of(retryable, delay), delay))


_RETRY_INFO = b"type.googleapis.com/google.rpc.RetryInfo"


def grpc_retry_delay(details: bytes | None) -> float | None:
    """The retry_delay of a google.rpc.RetryInfo in grpc-status-details-bin (a serialized
    google.rpc.Status{code 1, message 2, details 3: Any{type_url 1, value 2}};
    RetryInfo{retry_delay 1: Duration{seconds 1, nanos 2}}), or None."""
    if not details:
        return None
    try:
        for number, value in read(details):
            if number != 3 or not isinstance(value, bytes):
                continue
            any_fields = dict(read(value))
            if any_fields.get(1) != _RETRY_INFO:
                continue
            for n, duration in read(any_fields.get(2, b"")):
                if n == 1 and isinstance(duration, bytes):
                    parts = dict(read(duration))
                    seconds, nanos = parts.get(1, 0), parts.get(2, 0)
                    if seconds >= 2**63 or nanos >= 2**31:  # negative: no delay to honour
                        return 0.0
                    return seconds + nanos / 1e9
            return 0.0  # a RetryInfo without a delay
    except ValueError:
        return None
    return None


class Sender:
    """write() batches on the caller's thread; a thread maps the batches and exports them
    through `export(body) -> items rejected`, which raises ExportError."""

    def __init__(
        self,
        codec: Codec,
        export: Callable[[bytes], int],
        acks: Accounts,
        batch: BatchConfig,
        retry: RetryConfig,
        queue_size: int,
        endpoint: str,
    ):
        self.codec, self.export, self.acks = codec, export, acks
        self.batch, self.retry, self.endpoint = batch, retry, endpoint
        self.too_large = f"{codec.signal.noun} too large for one request (batch.max_bytes)"
        self.pending = SendBatch()
        self.queue: queue.Queue[SendBatch | None] = queue.Queue(queue_size)
        self.lock = threading.Lock()  # settles a batch once: sender vs close()
        self.mapping = threading.Lock()  # maps a batch once, in order (the metric state)
        self.inflight: SendBatch | None = None
        self.closed = False
        self.deadline: float | None = None  # the flush deadline, once flush() set one
        # time.monotonic() by which a stopping run must be done (its output's stop_by):
        # waiting for room ends there, and so does a server's retry delay that would pass it
        self.stop_deadline: float | None = None
        self.retries = Retry(
            retry,
            lambda: self.deadline or self.stop_deadline,
            f"otlp export to {endpoint}",
            log,
        )
        self.answered: bool | None = None  # did the last export reach the endpoint?
        # told the items of each batch the endpoint took whole, on the sender thread
        # (--manifest, the live canary)
        self.accepted: list[Callable[[list], None]] = []
        self.thread = threading.Thread(target=self._send_loop, name="otlp-sender", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop_by(self, deadline: float) -> None:
        """The run is stopping: it must be done by `deadline` (time.monotonic())."""
        self.stop_deadline = deadline

    # -- the caller's thread -----------------------------------------------------
    def write(self, events: list[str], docs: list | None = None) -> None:
        """Add events to the pending batch (the sender thread maps them). If this raises (a
        second signal), the events not yet in a batch have been failed first; batched ones
        settle later. Past the stop deadline a batch that finds no room fails as not sent.
        `docs`: the events already parsed (a `when` rule did it; None where not JSON),
        encoded as they are."""
        max_items, max_size = self.batch.max_spans, self.batch.max_bytes
        at = start = 0  # events[:at] are in a batch; events[start:at] the chunk in hand
        batch, before = self.pending, len(self.pending.events)
        try:
            while at < len(events):
                start, batch, before = at, self.pending, len(self.pending.events)
                if not before:
                    batch.handed = time.monotonic()
                chunk = events[at : at + max_items - before]
                if docs is not None or batch.docs is not None:  # kept in step with events
                    if batch.docs is None:
                        batch.docs = [None] * before
                    more = [None] * len(chunk) if docs is None else docs[at : at + len(chunk)]
                    batch.docs += more
                batch.events += chunk  # one step: whole in the batch or not at all
                at += len(chunk)
                batch.size += sum(map(len, chunk))
                if len(batch.events) >= max_items or batch.size >= max_size:
                    self._enqueue()
        except BaseException as exc:  # exact: the chunk is in the batch, or not at all
            if batch.docs is not None:
                del batch.docs[len(batch.events) :]
            rest = events[start + len(batch.events) - before :]
            self.acks.fail_all(not_sent(exc), rest, endpoint=self.endpoint)
            raise

    def poll(self) -> None:
        """The batch timer: a batch older than max_delay goes out."""
        if self.pending.events and time.monotonic() - self.pending.handed >= self.batch.max_delay:
            self._enqueue()

    def _enqueue(self, deadline: float | None = None) -> None:
        """Hand the pending batch to the sender; blocks while it is behind (backpressure),
        until `deadline` or the stop deadline: then the batch fails as undelivered."""
        batch, self.pending = self.pending, SendBatch()
        try:
            while True:
                stop = self.stop_deadline  # past it: no more waiting, room now or never
                stopping = stop is not None and time.monotonic() >= stop
                try:
                    self.queue.put(batch, block=not stopping, timeout=0.1)
                    return
                except queue.Full:
                    pass
                if stopping:
                    reason = NOT_SENT
                elif deadline is not None and time.monotonic() >= deadline:
                    reason = UNDELIVERED
                else:
                    continue
                self._fail(batch, reason)
                return
        except BaseException:  # interrupted while waiting: the batch is ours to fail
            self._fail(batch, NOT_SENT)
            raise

    def flush(self, timeout: float) -> int:
        """Wait for the exports; the number of events still undelivered."""
        deadline = time.monotonic() + timeout
        self.deadline = deadline
        self.retries.nudge()  # a retry waiting on the server's delay checks it against this
        if self.pending.events:
            self._enqueue(deadline)
        while time.monotonic() < deadline and (self.queue.unfinished_tasks or self.inflight):
            time.sleep(0.01)
        return self.acks.pending

    def close(self) -> None:
        """Everything not yet exported is failed now; the sender stops after its attempt
        (a retry wait ends at once)."""
        with self.lock:  # from here on the sender fails whatever it takes off the queue
            self.closed = True
            inflight = self.inflight
        if inflight is not None:  # failed here, before its retry wait ends
            self._fail(inflight, UNDELIVERED)
        self.retries.stop()
        leftovers = []
        while True:
            try:
                batch = self.queue.get_nowait()
            except queue.Empty:
                break
            self.queue.task_done()
            if batch is not None:
                leftovers.append(batch)
        for batch in leftovers:  # mapped in the order handed: the metric state's
            self._fail(batch, UNDELIVERED)
        if self.pending.events:  # never handed to the sender (flush was interrupted)
            batch, self.pending = self.pending, SendBatch()
            self._fail(batch, NOT_SENT)
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(timeout=1.0)

    # -- the sender thread -------------------------------------------------------
    def _send_loop(self) -> None:
        while True:
            batch = self.queue.get()
            try:
                if batch is None:
                    return
                with self.lock:
                    closed = self.closed
                    if not closed:
                        self.inflight = batch
                if closed:
                    self._fail(batch, UNDELIVERED)
                    continue
                self._send(batch)
            finally:
                self.queue.task_done()

    def _map(self, batch: SendBatch) -> None:
        """Map the batch's events, once: the sender thread does, or whoever fails a batch it
        never took (every batch is mapped before it settles, so an event that does not map
        fails with its own reason). The events that do not map fail alone here."""
        with self.mapping:
            if not batch.mapped:
                batch.items, batch.events = encode_all(
                    self.codec, batch.events, batch.docs, self.acks.fail
                )
                batch.docs, batch.mapped = None, True

    def _fail(self, batch: SendBatch, reason: str) -> None:
        """Fail a batch that was not exported (mapped first)."""
        self._map(batch)
        with self.lock:
            self._settle(batch, reason)

    def _send(self, batch: SendBatch) -> None:
        """Map and export a batch (as several requests if it is over batch.max_bytes), and
        settle it."""
        try:
            self._map(batch)
            parts: list[Part] = []
            if batch.items and not batch.settled:
                c, limit = self.codec, self.batch.max_bytes
                parts = requests(batch, c.request, limit, self.too_large, c.signal.noun)
        except Exception as exc:
            log.exception("otlp export to %s failed unexpectedly", self.endpoint)
            parts = [(batch, None, f"export error: {type(exc).__name__}", str(exc))]
        for part, body, reason, detail in parts:
            rejected = 0
            if body is not None:
                try:
                    reason, rejected, detail = self._export_with_retries(body)
                except Exception as exc:  # never let the sender die with a batch in hand
                    log.exception("otlp export to %s failed unexpectedly", self.endpoint)
                    reason, detail = f"export error: {type(exc).__name__}", str(exc)
            with self.lock:
                if batch.settled:  # close() failed what was left, this part included
                    break
                self._settle(part, reason, rejected, detail)
                if part is not batch:  # settled: what close() may still fail is the rest
                    del batch.items[: len(part.items)]
                    del batch.events[: len(part.items)]
        with self.lock:
            self.inflight = None
            batch.settled = True

    def _export_with_retries(self, body: bytes) -> tuple[str | None, int, str]:
        """(failure reason or None, items rejected although the rest was taken, detail)."""

        def attempt() -> int:
            try:
                rejected = self.export(body)
            except DeliveryError as exc:  # a permanent answer is still an answer
                self.answered = exc.failure.kind is Kind.PERMANENT
                raise
            self.answered = True
            return rejected

        rejected, failure = self.retries.send(attempt)
        if failure is not None:
            return failure.reason, 0, failure.detail or ""
        return None, rejected or 0, ""

    def _settle(
        self, batch: SendBatch, reason: str | None, rejected: int = 0, detail: str = ""
    ) -> None:
        """Acknowledge every event of the batch once (caller holds the lock)."""
        if batch.settled:
            return
        batch.settled = True
        if reason is None:
            # metrics count rejected data points, and an event may carry several
            rejected = min(rejected, len(batch.items))
            accepted = len(batch.items) - rejected
            self.acks.delivered += accepted
            self.acks.latency.observe_many(time.monotonic() - batch.handed, accepted)
            if self.accepted and not rejected:  # partial: which is unknown
                for tell in self.accepted:
                    tell(batch.items)
            for _ in range(rejected):  # OTLP does not say which items it refused
                self.acks.fail(
                    "rejected by the endpoint (partial success)", None, endpoint=self.endpoint
                )
            return
        for event in batch.events:
            self.acks.fail(reason, event, detail, endpoint=self.endpoint)
