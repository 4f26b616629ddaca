"""A real Jaeger (OTLP receiver + query API) for tests: plain helpers, no pytest fixtures.

Uses $JAEGER_QUERY / $OTLP_ENDPOINT (/ $OTLP_HTTP_ENDPOINT) when set, otherwise
`scripts/local-jaeger start` (builds Jaeger once with Go, then starts in seconds).
"""

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local-jaeger"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never proxy 127.0.0.1


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
    try:
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), "start"], capture_output=True, text=True, timeout=3600
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"local Jaeger unavailable ({e}); {how}") from e
    found = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    keys = {
        "otlp_grpc": "OTLP_ENDPOINT",
        "otlp_http": "OTLP_HTTP_ENDPOINT",
        "query": "JAEGER_QUERY",
    }
    if proc.returncode or not all(k in found for k in keys.values()):
        tail = "\n".join(proc.stderr.splitlines()[-20:])
        raise RuntimeError(f"local Jaeger unavailable (exit {proc.returncode}); {how}\n{tail}")
    return {name: found[key] for name, key in keys.items()}


def _get(url: str) -> dict | None:
    """GET JSON, None on 404."""
    try:
        with _OPENER.open(url, timeout=10) as r:
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
    is gone), `up()` listens again on the same port. The endpoint and its storage stay."""

    def __init__(self, target: str):

        from tests.harness.kafka import free_port

        host, port = target.split("://")[-1].rsplit(":", 1)
        self.target = (host, int(port))
        self.port = free_port()  # not ephemeral: see free_port
        self.address = f"127.0.0.1:{self.port}"
        self._listener = None
        self._conns: list = []

    def up(self) -> None:
        import socket
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        import socket

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
        import socket
        import threading

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

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


class OwnJaeger:
    """scripts/local-jaeger on free ports and its own state folder (to stop; in-memory
    storage: a stop loses its traces)."""

    def __init__(self, state: Path):

        self.state = Path(state)
        from tests.harness.kafka import free_port

        first = free_port(4)  # not ephemeral: see free_port
        ports = {name: first + i for i, name in enumerate(("OTLP_GRPC", "OTLP_HTTP", "QUERY",
                                                           "QUERY_GRPC"))}
        self.env = os.environ | {"LOCAL_JAEGER_DIR": str(self.state)} | {
            f"LOCAL_JAEGER_{k}_PORT": str(v) for k, v in ports.items()
        }
        self.otlp_grpc = f"127.0.0.1:{ports['OTLP_GRPC']}"
        self.otlp_http = f"http://127.0.0.1:{ports['OTLP_HTTP']}"
        self.query = f"http://127.0.0.1:{ports['QUERY']}"

    def _run(self, command: str) -> None:
        r = subprocess.run([sys.executable, str(SCRIPT), command], capture_output=True,
                           text=True, timeout=600, env=self.env)
        if r.returncode:
            raise RuntimeError(f"scripts/local-jaeger {command} exited {r.returncode}: {r.stderr}")

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")
