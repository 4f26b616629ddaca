"""A real Jaeger (OTLP receiver + query API) for tests: plain helpers, no pytest fixtures.

The shared one: $JAEGER_QUERY / $OTLP_ENDPOINT (/ $OTLP_HTTP_ENDPOINT) when set, otherwise
`scripts/local-jaeger start` (builds Jaeger once with Go, then starts in seconds). A private
one (`PrivateJaeger`) to kill and restart, and a TCP forwarder to take an endpoint away.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
from pathlib import Path

from connector.testing import free_port
from tests.harness.cli import wait_for
from tests.harness.metrics import NO_PROXY
from tests.harness.services import start_service

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local-jaeger"


def jaeger_endpoints() -> dict:
    """Endpoints of a running Jaeger (started if needed), e.g. {"otlp_grpc": "127.0.0.1:4317",
    "otlp_http": "http://127.0.0.1:4318", "query": "http://127.0.0.1:16686"}."""
    query, otlp = os.environ.get("JAEGER_QUERY"), os.environ.get("OTLP_ENDPOINT")
    if query and otlp:
        grpc = otlp.split("://")[-1].rstrip("/")
        http = os.environ.get("OTLP_HTTP_ENDPOINT") or f"http://{grpc.rsplit(':', 1)[0]}:4318"
        return {"otlp_grpc": grpc, "otlp_http": http.rstrip("/"), "query": query.rstrip("/")}
    how = (
        "run `scripts/local-jaeger start` in the repo root (needs Go once, to build Jaeger), "
        "or set JAEGER_QUERY, OTLP_ENDPOINT and OTLP_HTTP_ENDPOINT to a running Jaeger"
    )
    keys = {
        "otlp_grpc": "OTLP_ENDPOINT",
        "otlp_http": "OTLP_HTTP_ENDPOINT",
        "query": "JAEGER_QUERY",
    }
    found = start_service(SCRIPT, "local Jaeger", list(keys.values()), how, 3600)
    return {name: found[key] for name, key in keys.items()}


def _get(url: str) -> dict | None:
    """GET JSON, None on 404."""
    try:
        with NO_PROXY.open(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def trace_id_hex(trace_id: str | bytes | int) -> str:
    """32 lowercase hex digits, as in the Jaeger API paths."""
    if isinstance(trace_id, bytes):
        return trace_id.hex()
    if isinstance(trace_id, int):
        return f"{trace_id:032x}"
    return trace_id.lower()


def _spans(traces: list[dict]) -> list[dict]:
    """Flatten traces to spans; each span gets its resolved "process" ({"serviceName", "tags"})."""
    return [
        {**s, "process": t["processes"].get(s["processID"])} for t in traces for s in t["spans"]
    ]


def get_trace(query_url: str, trace_id: str | bytes | int) -> list[dict]:
    """Spans of one trace (GET /api/traces/{id}); [] when not found."""
    body = _get(f"{query_url.rstrip('/')}/api/traces/{trace_id_hex(trace_id)}")
    return _spans((body or {}).get("data") or [])


def wait_for_trace(
    query_url: str, trace_id: str | bytes | int, min_spans: int = 1, timeout: float = 10.0
) -> list[dict]:
    """Poll get_trace until it has >= min_spans spans; AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while len(spans := get_trace(query_url, trace_id)) < min_spans:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"trace {trace_id_hex(trace_id)}: {len(spans)} span(s) after {timeout}s, "
                f"expected >= {min_spans}"
            )
        time.sleep(0.1)
    return spans


def tags(span_or_process: dict) -> dict:
    """The "tags" list [{"key", "type", "value"}] of a span or process as {key: value}."""
    return {t["key"]: t["value"] for t in span_or_process.get("tags") or []}


class TcpProxy:
    """A TCP forwarder in front of an endpoint, to take it away and bring it back: `down()`
    closes the listener and every connection (new ones are refused, as when the collector
    is gone), `up()` listens again on the same port. The endpoint and its storage stay.
    `stall()` keeps it up but silent: an endpoint that hangs."""

    def __init__(self, target: str):
        host, port = target.split("://")[-1].rstrip("/").rsplit(":", 1)
        self.target = (host, int(port))
        self.port = free_port()  # not ephemeral: see free_port
        self.address = f"127.0.0.1:{self.port}"
        self._listener = None
        self._conns: list = []
        self._stalled = threading.Event()

    def stall(self) -> None:
        """From now on forward nothing, in either direction, and keep every connection open
        (new ones are accepted too): an endpoint that took the connection (for gRPC, the
        HTTP/2 handshake too) and never answers again. Until the next `up()`."""
        self._stalled.set()

    def up(self) -> None:
        self._stalled.clear()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # wakes the accept() (close() alone does not)
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._conns.clear()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst) -> None:
        try:
            while data := src.recv(65536):
                if not self._stalled.is_set():  # stalled: read and drop, answer nothing
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


# -- a Jaeger of a test's own, to kill (never the shared one) --------------------------------

PRIVATE_CONFIG = """\
# a test's own Jaeger: badger on disk, so a kill -9 and restart keeps stored traces
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {receivers: [otlp], exporters: [jaeger_storage_exporter]}
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
extensions:
  jaeger_storage:
    backends:
      store:
        badger:
          directories: {keys: "{state}/keys", values: "{state}/values"}
          ephemeral: false
  jaeger_query:
    storage: {traces: store}
    enable_tracing: false
    http: {endpoint: "127.0.0.1:{query}"}
    grpc: {endpoint: "127.0.0.1:{query_grpc}"}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:{grpc}"}
      http: {endpoint: "127.0.0.1:{http}"}
exporters:
  jaeger_storage_exporter: {trace_storage: store}
"""


def jaeger_binary(state: Path) -> Path:
    """The binary scripts/local-jaeger builds and caches; built now (on private ports) if
    this machine has never built it."""
    import runpy

    binary = runpy.run_path(str(SCRIPT), run_name="local_jaeger")["BINARY"]
    if not binary.exists():
        env = os.environ | {"LOCAL_JAEGER_DIR": str(state / "build")} | {
            f"LOCAL_JAEGER_{k.upper()}_PORT": str(free_port())
            for k in ("otlp_grpc", "otlp_http", "query", "query_grpc")
        }
        for command in ("start", "stop"):
            subprocess.run([sys.executable, str(SCRIPT), command], env=env,
                           capture_output=True, timeout=3600, check=True)
    return binary


class PrivateJaeger:
    """Jaeger on free ports with its own badger folder: start, kill -9, restart, stop.
    Created stopped: until start(), its ports refuse (an endpoint that is down)."""

    def __init__(self, state: Path):
        self.state = Path(state)
        self.state.mkdir(parents=True, exist_ok=True)
        self.ports = {k: free_port() for k in ("grpc", "http", "query", "query_grpc")}
        self.otlp_grpc = f"127.0.0.1:{self.ports['grpc']}"
        self.otlp_http = f"http://127.0.0.1:{self.ports['http']}"
        self.query = f"http://127.0.0.1:{self.ports['query']}"
        self.binary = jaeger_binary(self.state)
        self.config = self.state / "jaeger.yaml"
        text = PRIVATE_CONFIG.replace("{state}", str(self.state))
        for name, port in self.ports.items():
            text = text.replace("{" + name + "}", str(port))
        self.config.write_text(text)
        self.proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60) -> None:
        with open(self.state / "jaeger.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
                # as scripts/local-jaeger: no self-tracing to flush to an absent 4317 at stop
                env={"OTEL_TRACES_SAMPLER": "always_off", **os.environ},
            )
        wait_for("the private Jaeger to answer", self.ready, timeout, 0.1)

    def ensure_running(self) -> None:
        if not self.running:
            self.start()

    def ready(self) -> bool:
        assert self.running, (
            "the private Jaeger exited: " + (self.state / "jaeger.log").read_text()[-2000:]
        )
        try:
            with NO_PROXY.open(f"{self.query}/api/services", timeout=2) as r:
                if r.status != 200:
                    return False
            with socket.create_connection(("127.0.0.1", self.ports["grpc"]), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        if self.running:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (a kill -9 after 20 s); its ports refuse again."""
        if self.running:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def trace(self, trace_id: str) -> list[dict]:
        """The spans it holds for one trace; [] when none."""
        return get_trace(self.query, trace_id)
