"""`otlp`: events -> OTLP spans -> an OTLP endpoint (Jaeger, Tempo, a Collector).

Mapping happens on the pipeline's thread; one sender thread exports batches
(gRPC or HTTP/protobuf) with retries on retryable statuses, and acknowledges
each span of a batch once: delivered when the export succeeded, failed with the
status when the retries ran out. A bounded queue is the backpressure.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import queue
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import orjson
from pydantic import Field, model_validator

from connector.fields import ConfigPath, Strict
from connector.logs import add_secret, redact
from connector.outputs.base import NOT_SENT, Acks, Connecting, OutputConfig, OutputError
from connector.spans import (
    MappingError,
    SpanMapping,
    encode_span,
    export_request,
    group_spans,
    mapping_detail,
    mapping_reason,
    unexpected_reason,
)

__all__ = ["Config", "OtlpOutput", "build"]

log = logging.getLogger("connector.otlp")

GRPC_RETRYABLE = {
    "UNAVAILABLE",
    "RESOURCE_EXHAUSTED",
    "DEADLINE_EXCEEDED",
    "ABORTED",
    "CANCELLED",
    "OUT_OF_RANGE",
    "DATA_LOSS",
}
HTTP_RETRYABLE = {429, 502, 503, 504}
# Reconnect within a second of the endpoint coming back (gRPC's default backoff grows to
# 120 s, and its first retry waits 1 s): a local collector is cheap to probe.
_GRPC_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
UNDELIVERED = "undelivered at the flush deadline (flush_timeout)"
TOO_LARGE = "span too large for one request (batch.max_bytes)"


class TlsConfig(Strict):
    insecure: bool | None = Field(None, description="plaintext; default: true unless https://")
    ca_file: ConfigPath | None = None
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None


class BatchConfig(Strict):
    max_spans: int = Field(8192, gt=0)  # the OpenTelemetry Collector batch default
    max_delay: float = Field(0.2, gt=0, description="seconds a span may wait for its batch")
    # Under 4 MiB, the gRPC max receive size of Collectors and Jaeger: a larger request is
    # refused whole (RESOURCE_EXHAUSTED), however many good spans it carries.
    max_bytes: int = Field(
        4_000_000, ge=1024, description="bytes per export request (uncompressed)"
    )


class RetryConfig(Strict):
    attempts: int = Field(5, ge=1)
    initial_backoff: float = Field(0.2, gt=0)
    max_backoff: float = Field(5.0, gt=0)


class Config(OutputConfig):
    endpoint: str = Field(min_length=1)
    protocol: Literal["grpc", "http/protobuf"] = "grpc"
    headers: dict[str, str] = Field(default_factory=dict)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    compression: Literal["gzip", "none"] = "none"  # as OpenTelemetry's exporters default
    timeout: float = Field(10.0, gt=0, description="seconds per export attempt")
    batch: BatchConfig = Field(default_factory=BatchConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    mapping: SpanMapping = Field(default_factory=SpanMapping)
    queue_size: int = Field(4, gt=0, description="batches waiting for export")
    connect_timeout: float = Field(
        30.0, gt=0, description="seconds start() waits for the endpoint to answer"
    )

    @model_validator(mode="after")
    def _tls_files(self) -> Config:
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self.tls, name)
            if path is not None and not path.is_file():
                raise ValueError(f"tls.{name}: no such file: {path}")
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> Config:
        if bool(self.tls.cert_file) != bool(self.tls.key_file):
            raise ValueError("tls: cert_file and key_file go together")
        return self

    @property
    def secure(self) -> bool:
        if self.tls.insecure is not None:
            return not self.tls.insecure
        return self.endpoint.startswith("https://")


@dataclass
class _Batch:
    # (span, event) pairs: one append per event, so an interrupt never splits them
    items: list = field(default_factory=list)
    handed: float = field(default_factory=time.monotonic)
    size: int = 0  # the spans' bytes, to keep each request under batch.max_bytes
    settled: bool = False

    @property
    def events(self) -> list[str]:
        return [event for _, event in self.items]


class ExportError(Exception):
    """`reason` is bounded (gRPC code, HTTP status): it becomes a metric label."""

    def __init__(self, reason: str, retryable: bool, detail: str = "", delay: float | None = None):
        super().__init__(reason)
        self.reason, self.retryable, self.detail, self.delay = reason, retryable, detail, delay


class OtlpOutput:
    def __init__(self, config: Config, acks: Acks):
        self.config = config
        self.acks = acks
        self.pending: _Batch = _Batch()
        self.queue: queue.Queue[_Batch | None] = queue.Queue(config.queue_size)
        self.lock = threading.Lock()  # settles a batch once: sender vs close()
        self.inflight: _Batch | None = None
        self.closed = False
        self.answered: bool | None = None  # did the last export reach the endpoint?
        self.channel = None  # gRPC: start() waits for it to be ready
        self._reachable = (0.0, False)  # ready()'s cached socket check: (good until, answer)
        self.thread = threading.Thread(target=self._send_loop, name="otlp-sender", daemon=True)
        for value in config.headers.values():
            add_secret(value.split(" ", 1)[-1])  # "Bearer <token>": the token is the secret
        self._export = self._grpc_exporter() if config.protocol == "grpc" else self._http_exporter()

    # -- pipeline side ---------------------------------------------------------
    def start(self) -> None:
        """Wait (up to connect_timeout) until the endpoint answers, then start sending."""
        connecting = Connecting(self.acks, self.config.endpoint, self.config.connect_timeout)
        cause = "no answer"
        while True:
            try:
                if self.channel is not None:
                    import grpc

                    ready = grpc.channel_ready_future(self.channel)
                    try:
                        ready.result(timeout=min(1.0, max(0.1, connecting.left)))
                        break
                    except grpc.FutureTimeoutError:
                        ready.cancel()  # unsubscribes from the channel's state
                        cause = "the gRPC channel did not become ready"
                else:
                    host, port = self._host_port()
                    socket.create_connection((host, port), timeout=1.0).close()
                    break
            except OSError as exc:
                cause = exc.strerror or str(exc)
                time.sleep(min(0.5, connecting.left))
            if not connecting.tick():
                raise OutputError(
                    redact(
                        f"cannot reach the OTLP endpoint {self.config.endpoint} within "
                        f"{self.config.connect_timeout:g}s ({cause}); check endpoint and that "
                        "the collector is up, or raise connect_timeout"
                    )
                )
        self.thread.start()

    def write_batch(self, events: list[str]) -> None:
        """Map events to spans into the pending batch. If this raises (a second signal),
        the events not yet in a batch have been failed first; batched ones settle later.
        Past the stop deadline a batch that finds no room fails as not sent."""
        mapping, max_spans = self.config.mapping, self.config.batch.max_spans
        # headroom for the request's resource and scope framing around the spans
        max_bytes = self.config.batch.max_bytes
        budget = max_bytes - max_bytes // 32
        items = self.pending.items
        if not items:
            self.pending.handed = time.monotonic()
        append, size = items.append, self.pending.size
        i, taken = 0, False  # as in kafka.write_batch: exact under an interrupt
        try:
            for i, event in enumerate(events):  # noqa: B007 - read by the handler below
                taken = False
                try:
                    item = (encode_span(orjson.loads(event), mapping), event)
                except (orjson.JSONDecodeError, MappingError) as exc:
                    self.acks.fail(mapping_reason(exc), event, detail=mapping_detail(exc))
                    taken = True
                    continue
                except Exception as exc:  # a defect in the mapping fails one event alone
                    self.acks.fail(unexpected_reason(exc), event, detail=str(exc)[:200])
                    taken = True
                    continue
                n = len(item[0][2]) + 6  # the span, its tag and length
                size += n
                if size > budget:  # rare: the request would be too large with this span
                    if n > max_bytes:  # over the limit alone: no request can carry it
                        self.acks.fail(TOO_LARGE, event, detail=f"span of {n - 6} bytes")
                        size -= n
                        taken = True
                        continue
                    if items:
                        self.pending.size = 0
                        self._enqueue()
                        items = self.pending.items
                        append = items.append
                    size = n
                taken = True
                append(item)
                if len(items) >= max_spans:
                    self.pending.size = 0
                    self._enqueue()
                    items = self.pending.items
                    append = items.append
                    size = 0
            self.pending.size = size
        except BaseException as exc:
            self.pending.size = size if self.pending.items else 0
            reason = (
                NOT_SENT
                if isinstance(exc, KeyboardInterrupt)
                else (f"not sent: {type(exc).__name__}")
            )
            rest = events[i + 1 if taken else i :]
            self.acks.fail_all(reason, rest, endpoint=self.config.endpoint)
            raise

    def poll(self) -> None:
        if (
            self.pending.items
            and time.monotonic() - self.pending.handed >= self.config.batch.max_delay
        ):
            self._enqueue()

    def _enqueue(self, deadline: float | None = None) -> None:
        """Hand the pending batch to the sender; blocks while it is behind (backpressure),
        until `deadline` or the stop deadline: then the batch fails as undelivered."""
        batch, self.pending = self.pending, _Batch()
        try:
            while True:
                stopping = self.acks.stopping  # then no more waiting: room now, or never
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
                with self.lock:
                    self._settle(batch, reason)
                return
        except BaseException:  # interrupted while waiting: the batch is ours to fail
            with self.lock:
                self._settle(batch, NOT_SENT)
            raise

    def ready(self) -> bool:
        """Cheap: the last export's answer, else a socket check at most every 5 s."""
        if self.answered is not None:
            return self.answered
        now, (until, reachable) = time.monotonic(), self._reachable
        if now < until:
            return reachable
        host, port = self._host_port()
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            reachable = True
        except OSError:
            reachable = False
        self._reachable = (now + 5.0, reachable)
        return reachable

    def flush(self, timeout: float) -> int:
        """Wait for the exports; the number of events still undelivered."""
        deadline = time.monotonic() + timeout
        if self.pending.items:
            self._enqueue(deadline)
        while time.monotonic() < deadline and (self.queue.unfinished_tasks or self.inflight):
            time.sleep(0.01)
        return self.acks.pending

    def close(self) -> None:
        """Everything not yet exported is failed now; the sender stops after its attempt."""
        with self.lock:  # from here on the sender fails whatever it takes off the queue
            self.closed = True
        leftovers = []
        if self.pending.items:  # never handed to the sender (flush was interrupted)
            batch, self.pending = self.pending, _Batch()
            with self.lock:
                self._settle(batch, NOT_SENT)
        while True:
            try:
                batch = self.queue.get_nowait()
            except queue.Empty:
                break
            self.queue.task_done()
            if batch is not None:
                leftovers.append(batch)
        with self.lock:
            if self.inflight is not None:
                leftovers.append(self.inflight)
            for batch in leftovers:
                self._settle(batch, UNDELIVERED)
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(timeout=1.0)

    # -- sender thread ---------------------------------------------------------
    def _send_loop(self) -> None:
        while True:
            batch = self.queue.get()
            try:
                if batch is None:
                    return
                with self.lock:
                    if self.closed:
                        self._settle(batch, UNDELIVERED)
                        continue
                    self.inflight = batch
                self._send(batch)
            finally:
                self.queue.task_done()

    def _send(self, batch: _Batch) -> None:
        """Export a batch (as several requests if it is over batch.max_bytes) and settle it."""
        try:
            parts = self._requests(batch)
        except Exception as exc:
            log.exception("otlp export to %s failed unexpectedly", self.config.endpoint)
            parts = [(batch, None, f"export error: {type(exc).__name__}", str(exc))]
        for part, body, reason, detail in parts:
            rejected = 0
            if body is not None:
                try:
                    reason, rejected, detail = self._export_with_retries(body)
                except Exception as exc:  # never let the sender die with a batch in hand
                    log.exception("otlp export to %s failed unexpectedly", self.config.endpoint)
                    reason, detail = f"export error: {type(exc).__name__}", str(exc)
            with self.lock:
                if batch.settled:  # close() failed what was left, this part included
                    break
                self._settle(part, reason, rejected, detail)
                if part is not batch:  # settled: what close() may still fail is the rest
                    del batch.items[: len(part.items)]
        with self.lock:
            self.inflight = None
            batch.settled = True

    def _requests(self, batch: _Batch) -> list[tuple[_Batch, bytes | None, str | None, str]]:
        """(part, request body, reason, detail): the batch as one request when it fits
        batch.max_bytes (write_batch sees to that but for the resources' framing), else
        halved in order; a lone span over the limit gets no body but a reason."""
        body = export_request(group_spans([span for span, _ in batch.items]))
        limit = self.config.batch.max_bytes
        if len(body) <= limit:
            return [(batch, body, None, "")]
        if len(batch.items) == 1:
            return [(batch, None, TOO_LARGE, f"request of {len(body)} bytes")]
        half = len(batch.items) // 2
        return [
            *self._requests(_Batch(batch.items[:half], batch.handed)),
            *self._requests(_Batch(batch.items[half:], batch.handed)),
        ]

    def _export_with_retries(self, body: bytes) -> tuple[str | None, int, str]:
        """(failure reason or None, spans rejected although the rest was taken, detail)."""
        retry = self.config.retry
        backoff = retry.initial_backoff
        for attempt in range(1, retry.attempts + 1):
            try:
                rejected = self._export(body)
                self.answered = True
                return None, rejected, ""
            except ExportError as exc:
                self.answered = exc.retryable is False  # a permanent answer is still an answer
                if not exc.retryable or attempt == retry.attempts or self.closed:
                    return f"{exc.reason} (after {attempt} attempt(s))", 0, exc.detail
                log.warning(
                    "otlp export to %s failed (%s); retry %d/%d",
                    self.config.endpoint,
                    f"{exc.reason}: {exc.detail}" if exc.detail else exc.reason,
                    attempt,
                    retry.attempts - 1,
                )
                time.sleep(exc.delay if exc.delay is not None else backoff * random.uniform(0.5, 1))
                backoff = min(backoff * 2, retry.max_backoff)
        return "unreachable", 0, ""

    def _settle(
        self, batch: _Batch, reason: str | None, rejected: int = 0, detail: str = ""
    ) -> None:
        """Acknowledge every span of the batch once (caller holds the lock)."""
        if batch.settled:
            return
        batch.settled = True
        if reason is None:
            accepted = len(batch.items) - rejected
            self.acks.delivered += accepted
            self.acks.latency.observe_many(time.monotonic() - batch.handed, accepted)
            for _ in range(rejected):  # OTLP does not say which spans it refused
                self.acks.fail(
                    "rejected by the endpoint (partial success)",
                    None,
                    endpoint=self.config.endpoint,
                )
            return
        for event in batch.events:
            self.acks.fail(reason, event, detail, endpoint=self.config.endpoint)

    # -- protocols -------------------------------------------------------------
    def _host_port(self) -> tuple[str, int]:
        url = self.config.endpoint
        parts = urlsplit(url if "://" in url else f"//{url}")
        default = 4317 if self.config.protocol == "grpc" else 4318
        return parts.hostname or "127.0.0.1", parts.port or default

    def _grpc_exporter(self):
        import grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        host, port = self._host_port()
        target, tls = f"{host}:{port}", self.config.tls
        compression = grpc.Compression.Gzip if self.config.compression == "gzip" else None
        if self.config.secure:

            def read(path):
                return path.read_bytes() if path else None

            creds = grpc.ssl_channel_credentials(
                read(tls.ca_file), read(tls.key_file), read(tls.cert_file)
            )
            channel = grpc.secure_channel(
                target, creds, options=_GRPC_OPTIONS, compression=compression
            )
        else:
            channel = grpc.insecure_channel(target, options=_GRPC_OPTIONS, compression=compression)
        self.channel = channel
        # The request is already serialized (spans.export_request): send the bytes as they are.
        call = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        metadata = [(k.lower(), v) for k, v in self.config.headers.items()]
        timeout = self.config.timeout

        def export(request) -> int:
            try:
                # wait_for_ready: while the endpoint is away, an attempt waits (up to
                # `timeout`) for the channel to reconnect instead of failing at once, so
                # retries are not spent against a channel in its reconnect backoff
                response = call(request, timeout=timeout, metadata=metadata, wait_for_ready=True)
            except grpc.RpcError as exc:
                code, details = exc.code().name, exc.details() or ""
                # "message larger than max (N vs. 4194304)": the same bytes fail every time
                retryable = code in GRPC_RETRYABLE and "larger than max" not in details
                raise ExportError(f"gRPC {code}", retryable, details) from None
            return _partial(response)

        return export

    def _http_exporter(self):
        url = self.config.endpoint
        parts = urlsplit(url if "://" in url else f"http://{url}")
        path = parts.path if parts.path not in ("", "/") else "/v1/traces"
        host, port = self._host_port()
        headers = {"Content-Type": "application/x-protobuf", **self.config.headers}
        if self.config.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        local = threading.local()

        def connection() -> http.client.HTTPConnection:
            if getattr(local, "conn", None) is None:
                if self.config.secure:
                    import ssl

                    tls = self.config.tls
                    ctx = ssl.create_default_context(cafile=tls.ca_file)
                    if tls.cert_file:
                        ctx.load_cert_chain(tls.cert_file, tls.key_file)
                    local.conn = http.client.HTTPSConnection(
                        host, port, timeout=self.config.timeout, context=ctx
                    )
                else:
                    local.conn = http.client.HTTPConnection(host, port, timeout=self.config.timeout)
            return local.conn

        def wait_reachable() -> None:
            """Like gRPC's wait_for_ready: an attempt waits (up to `timeout`) for the endpoint
            to accept a connection, so it goes out as soon as the endpoint is back instead
            of spending the retries while it is away."""
            deadline = time.monotonic() + self.config.timeout
            while True:
                try:
                    socket.create_connection((host, port), timeout=1.0).close()
                    return
                except OSError as exc:
                    if self.closed or time.monotonic() >= deadline:
                        raise ExportError("HTTP connection failed", True, str(exc)) from None
                time.sleep(0.1)

        def export(request) -> int:
            body = request
            if self.config.compression == "gzip":
                body = gzip.compress(body, compresslevel=1)
            if getattr(local, "conn", None) is None:
                wait_reachable()
            try:
                conn = connection()
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                local.conn = None
                raise ExportError("HTTP connection failed", True, str(exc)) from None
            if response.status >= 300:
                delay = response.getheader("Retry-After")
                raise ExportError(
                    f"HTTP {response.status}",
                    response.status in HTTP_RETRYABLE,
                    payload[:200].decode("utf-8", "replace").strip(),
                    float(delay) if delay and delay.isdigit() else None,
                )
            from google.protobuf.message import DecodeError
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                ExportTraceServiceResponse,
            )

            try:
                return _partial(ExportTraceServiceResponse.FromString(payload) if payload else None)
            except DecodeError:  # a 2xx from a proxy that is not OTLP: accepted, no details
                return 0

        return export


def _partial(response) -> int:
    """How many spans an endpoint that took the request still rejected."""
    if response is None or not response.HasField("partial_success"):
        return 0
    if response.partial_success.rejected_spans:
        log.warning(
            "otlp endpoint rejected %d span(s): %s",
            response.partial_success.rejected_spans,
            response.partial_success.error_message,
        )
    return response.partial_success.rejected_spans


def build(config: Config, acks: Acks) -> OtlpOutput:
    return OtlpOutput(config, acks)
