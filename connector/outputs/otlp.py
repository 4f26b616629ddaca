"""`otlp`: events -> OTLP spans, log records or metrics -> an OTLP endpoint (Jaeger,
Tempo, a Collector).

The shared sender (otlp/sender.py) batches the events, maps them on its own thread,
and exports with retries. This module holds the config and the two protocols:
one `export(body)` function each, for gRPC and HTTP/protobuf.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from connector.canary.config import TraceCanaryConfig
from connector.delivery import RetryConfig, retry_after
from connector.fields import ConfigPath, Strict
from connector.logs import add_secret, redact
from connector.otlp.batches import BatchConfig
from connector.otlp.mapping import LogMapping, MetricMapping, SpanMapping
from connector.otlp.sender import ExportError, Sender, grpc_retry_delay
from connector.otlp.signals import MAPPINGS, codec
from connector.outputs.base import Acks, Batch, BuildContext, Connecting, OutputConfig, OutputError
from connector.outputs.otlp_recording import record_to

if TYPE_CHECKING:
    from connector.manifest import ManifestWriter

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


class TlsConfig(Strict):
    insecure: bool | None = Field(None, description="plaintext; default: true unless https://")
    ca_file: ConfigPath | None = None
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None


class Config(OutputConfig):
    endpoint: str = Field(min_length=1)
    protocol: Literal["grpc", "http/protobuf"] = "grpc"
    headers: dict[str, str] = Field(default_factory=dict)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    compression: Literal["gzip", "none"] = "none"  # as OpenTelemetry's exporters default
    timeout: float = Field(10.0, gt=0, description="seconds per export attempt")
    batch: BatchConfig = Field(default_factory=BatchConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    signal: Literal["traces", "logs", "metrics"] = "traces"
    mapping: SpanMapping | LogMapping | MetricMapping = Field(None, validate_default=True)
    queue_size: int = Field(4, gt=0, description="batches waiting for export")
    connect_timeout: float = Field(
        30.0, gt=0, description="seconds start() waits for the endpoint to answer"
    )
    verify: TraceCanaryConfig | None = Field(
        None, description="the live canary (traces): read accepted traces back from a store"
    )

    def spans(self) -> SpanMapping | None:
        return self.mapping if self.signal == "traces" else None

    @field_validator("mapping", mode="wrap")
    @classmethod
    def _signal_mapping(cls, value: Any, handler: Any, info: ValidationInfo) -> Any:
        """Each signal has its own mapping model (the signal is validated first)."""
        if "signal" not in info.data:  # an invalid signal: that error alone says it
            return value
        model = MAPPINGS[info.data["signal"]]
        if isinstance(value, model):
            return value
        return model.model_validate({} if value is None else value)

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

    @model_validator(mode="after")
    def _canary_reads_traces(self) -> Config:
        if self.verify is not None and self.signal != "traces":
            raise ValueError(
                f"verify: the live canary reads traces back from a store; signal {self.signal} "
                "is not read back (remove verify, or use it on a traces output)"
            )
        return self

    @property
    def secure(self) -> bool:
        if self.tls.insecure is not None:
            return not self.tls.insecure
        return self.endpoint.startswith("https://")


class OtlpOutput:
    def __init__(self, config: Config, acks: Acks):
        self.config = config
        self.acks = acks
        self.codec = codec(config.signal, config.mapping)
        self.channel = None  # gRPC: start() waits for it to be ready
        self._reachable = (0.0, False)  # ready()'s cached socket check: (good until, answer)
        for value in config.headers.values():
            add_secret(value.split(" ", 1)[-1])  # "Bearer <token>": the token is the secret
        export = self._grpc_exporter() if config.protocol == "grpc" else self._http_exporter()
        self.sender = Sender(
            self.codec,
            export,
            acks,
            config.batch,
            config.retry,
            config.queue_size,
            config.endpoint,
        )
        self.canary = None  # the live canary (`verify:`, traces only), started with the output
        if config.verify is not None and config.signal == "traces":
            from connector.canary.traces import TraceCanary  # only canary users pay for it

            self.canary = TraceCanary(config.verify, acks)
            self.sender.accepted.append(self.canary.accepted)

    # -- pipeline side ---------------------------------------------------------
    def start(self) -> None:
        """Wait (up to connect_timeout) until the endpoint answers, then start sending."""
        if self.config.secure:  # a certificate problem is said as such, not as unreachable
            self._check_tls()
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
        self.sender.start()
        if self.canary is not None:
            self.canary.start()

    def write_batch(self, batch: Batch) -> None:
        self.sender.write(batch.events, batch.docs)

    def record_to(self, writer: ManifestWriter, name: str) -> None:
        """--manifest: trace and span ids, or counts per resource (otlp_recording.py)."""
        c = self.config
        settings = {"endpoint": c.endpoint, "protocol": c.protocol, "signal": c.signal}
        record_to(self.sender, settings, writer, name)

    def stop_within(self, seconds: float) -> None:
        """Waiting for room in the sender's queue ends `seconds` from now."""
        self.sender.stop_by(time.monotonic() + seconds)

    def poll(self) -> None:
        self.sender.poll()

    def ready(self) -> bool:
        """Cheap: the last export's answer, else a socket check at most every 5 s."""
        if self.sender.answered is not None:
            return self.sender.answered
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
        return self.sender.flush(timeout)

    def close(self) -> None:
        if self.canary is not None:
            self.canary.stop()
        self.sender.close()

    def _partial(self, response) -> int:
        """How many items an endpoint that took the request still rejected."""
        if response is None or not response.HasField("partial_success"):
            return 0
        rejected = getattr(response.partial_success, self.codec.signal.rejected)
        if rejected:
            log.warning(
                "otlp endpoint rejected %d %s(s): %s",
                rejected,
                self.codec.signal.noun,
                response.partial_success.error_message,
            )
        return rejected

    # -- protocols -------------------------------------------------------------
    def _check_tls(self) -> None:
        from connector.tls_check import server_problem

        tls = self.config.tls
        ca = str(tls.ca_file) if tls.ca_file else None
        client = (str(tls.cert_file), str(tls.key_file)) if tls.cert_file and tls.key_file else None
        problem = server_problem(*self._host_port(), ca, client=client)
        if problem is not None:
            where = f"tls.ca_file {ca}" if ca else "the system's CA store"
            what = "TLS" if "client certificate" in problem else "TLS: certificate verify failed"
            raise OutputError(redact(
                f"{what} for the OTLP endpoint {self.config.endpoint}: {problem} "
                f"(CA file in use: {where})"
            ))

    def _host_port(self) -> tuple[str, int]:
        url = self.config.endpoint
        parts = urlsplit(url if "://" in url else f"//{url}")
        default = 4317 if self.config.protocol == "grpc" else 4318
        return parts.hostname or "127.0.0.1", parts.port or default

    def _grpc_exporter(self):
        import grpc

        response_type = self.codec.response()
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
        # The request is already serialized (otlp.wire): send the bytes as they are.
        call = channel.unary_unary(
            self.codec.signal.method,
            request_serializer=None,
            response_deserializer=response_type.FromString,
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
                delay = grpc_retry_delay(_trailer(exc, "grpc-status-details-bin"))
                raise ExportError(f"gRPC {code}", retryable, details, delay) from None
            return self._partial(response)

        return export

    def _http_exporter(self):
        url = self.config.endpoint
        parts = urlsplit(url if "://" in url else f"http://{url}")
        path = parts.path if parts.path not in ("", "/") else self.codec.signal.path
        host, port = self._host_port()
        headers = {"Content-Type": "application/x-protobuf", **self.config.headers}
        if self.config.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        local = threading.local()
        response_type = self.codec.response()

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
                    if self.sender.closed or time.monotonic() >= deadline:
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
                raise ExportError(
                    f"HTTP {response.status}",
                    response.status in HTTP_RETRYABLE,
                    payload[:200].decode("utf-8", "replace").strip(),
                    retry_after(response.getheader("Retry-After")),
                )
            from google.protobuf.message import DecodeError

            try:
                return self._partial(response_type.FromString(payload) if payload else None)
            except DecodeError:  # a 2xx from a proxy that is not OTLP: accepted, no details
                return 0

        return export


def _trailer(exc: Any, key: str) -> bytes | None:
    """A binary trailer of a failed call (grpc-status-details-bin), if the server sent one."""
    try:
        for k, v in exc.trailing_metadata() or ():
            if k == key:
                return v
    except Exception:  # a channel-level error has no call metadata
        return None
    return None


def build(config: Config, acks: Acks, context: BuildContext | None = None) -> OtlpOutput:
    return OtlpOutput(config, acks)
