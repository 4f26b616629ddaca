"""The otlp output on secured endpoints: a real Collector (the Jaeger v2 binary through
scripts/local-collector) whose otlp receivers take TLS with a custom CA, and mTLS, over
gRPC and HTTP; and `headers` with values from the environment (X-Scope-OrgID, an
Authorization bearer token), read on small in-process OTLP servers: the Jaeger v1.75.0
build has no bearer-token authenticator (its only auth extension is sigv4auth)."""

from __future__ import annotations

import http.server
import threading
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml

from connector.testing import free_port
from tests.harness.cli import no_traceback, run_cli
from tests.harness.tls import make_certificates

pytestmark = pytest.mark.timeout(300)

SCRIPT = """
import json, random
def produce(params):
    ts = params["timestamp"]
    trace = f"{random.getrandbits(128):032x}"
    return [json.dumps({"trace_id": trace, "span_id": f"{random.getrandbits(64):016x}",
                        "service": "shop", "operation": "get", "start_time": ts.isoformat(),
                        "duration_ms": 5})]
"""
SPANS = 20


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _config(write, otlp: dict, name: str = "c") -> Path:
    write("s.py", SCRIPT)
    config = {"mode": "backfill", "metrics": {"port": 0},
              "input": [{"rate": {"per_second": 5, "start": "2026-01-01T00:00:00Z",
                                  "end": "2026-01-01T00:00:04Z"}}],
              "event": {"script": {"path": "s.py"}},
              "output": [{"otlp": {"connect_timeout": 20, **otlp}}]}
    return write(f"{name}.yaml", yaml.safe_dump(config))


def _tls_collector(collector, certs: Path, mtls: bool):
    c = collector("tls")
    doc = c.config({"traces": {"receivers": ["otlp"], "exporters": ["nop"]}},
                   exporters={"nop": {}})
    tls = {"cert_file": str(certs / "broker.pem"), "key_file": str(certs / "broker.key")}
    if mtls:
        tls["client_ca_file"] = str(certs / "ca.pem")
    for protocol in ("grpc", "http"):
        doc["receivers"]["otlp"]["protocols"][protocol]["tls"] = tls
    c.start(doc)
    return c


@pytest.mark.parametrize("mtls", [False, True], ids=["tls", "mtls"])
def test_grpc_and_http_over_tls_with_a_custom_ca_reach_the_collector(
    collector, certs, write, mtls
):
    c = _tls_collector(collector, certs, mtls)
    client = {"cert_file": str(certs / "client.pem"),
              "key_file": str(certs / "client.key")} if mtls else {}
    grpc_port, http_port = c.ports["grpc"], c.ports["http"]
    for i, (endpoint, protocol) in enumerate([(f"127.0.0.1:{grpc_port}", "grpc"),
                                              (f"https://127.0.0.1:{http_port}",
                                               "http/protobuf")]):
        otlp = {"endpoint": endpoint, "protocol": protocol,
                "tls": {"insecure": False, "ca_file": str(certs / "ca.pem"), **client}}
        result = run_cli("run", _config(write, otlp, f"{protocol[:4]}"), "--quiet")
        assert result.code == 0, result.stderr
        assert result.summary("otlp-0")["delivered"] == SPANS
        c.wait_counter("otelcol_receiver_accepted_spans", SPANS * (i + 1))


def test_mtls_without_a_client_certificate_or_with_another_cas_ca_fails(
    collector, certs, write
):
    c = _tls_collector(collector, certs, mtls=True)
    for name, tls in [
        ("no client certificate", {"ca_file": str(certs / "ca.pem")}),
        ("untrusted server", {"ca_file": str(certs / "other-ca.pem"),
                              "cert_file": str(certs / "client.pem"),
                              "key_file": str(certs / "client.key")}),
    ]:
        otlp = {"endpoint": f"127.0.0.1:{c.ports['grpc']}", "connect_timeout": 5,
                "tls": {"insecure": False, **tls}}
        result = run_cli("run", _config(write, otlp, name.replace(" ", "-")))
        assert result.code == 1, (name, result.stderr)
        no_traceback(result.stderr)
        if name == "untrusted server":
            assert "TLS: certificate verify failed" in result.stderr, result.stderr
        else:
            assert "requires a client certificate (mTLS) and none is configured" in (
                result.stderr), result.stderr
    assert c.counter("otelcol_receiver_accepted_spans") == 0


# -- headers, read where they arrive --------------------------------------------------------

class _Grpc(grpc.GenericRpcHandler):
    def __init__(self):
        self.metadata: list[dict] = []

    def service(self, details):
        def export(request, context):
            self.metadata.append(dict(context.invocation_metadata()))
            return b""  # an empty ExportTraceServiceResponse

        return grpc.unary_unary_rpc_method_handler(export)


def _http_server(seen: list[dict]):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_headers_from_the_environment_arrive_exactly(write):
    token = "tok-" + "9" * 24
    headers = {"X-Scope-OrgID": "${TENANT}", "Authorization": "Bearer ${TOKEN}"}
    env = {"TENANT": "team-a", "TOKEN": token}
    handler = _Grpc()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers([handler])
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    seen: list[dict] = []
    web = _http_server(seen)
    try:
        import os

        for endpoint, protocol in [(f"127.0.0.1:{port}", "grpc"),
                                   (f"http://127.0.0.1:{web.server_port}", "http/protobuf")]:
            otlp = {"endpoint": endpoint, "protocol": protocol, "headers": headers}
            result = run_cli("run", _config(write, otlp, protocol[:4]), "--log-level", "debug",
                             env={**os.environ, **env})
            assert result.code == 0, result.stderr
            assert token not in result.stderr + result.stdout
    finally:
        server.stop(0)
        web.shutdown()
    assert handler.metadata and seen
    for got in handler.metadata:
        assert got["x-scope-orgid"] == "team-a"
        assert got["authorization"] == f"Bearer {token}"
    for got in seen:
        assert got["x-scope-orgid"] == "team-a"
        assert got["authorization"] == f"Bearer {token}"
        # exactly those of ours: nothing else the user did not ask for but the transport's
        assert set(got) - {"x-scope-orgid", "authorization"} <= {
            "host", "content-type", "content-length", "content-encoding", "user-agent",
            "accept", "accept-encoding", "connection"}, got


@pytest.mark.parametrize("server, ca, says", [
    ("broker", "other-ca.pem", "the server's certificate is not signed by a CA in the CA file"),
    ("broker-wronghost", "ca.pem", "hostname mismatch: the server's certificate is not valid "
                                   "for 127.0.0.1"),
    ("broker-expired", "ca.pem", "the server's certificate has expired"),
])
def test_a_certificate_problem_is_named_not_called_unreachable(certs, write, server, ca, says):
    """A TLS server with that certificate (the tests' TLS proxy, to nowhere): the run fails
    at start naming the cause and the CA file, over gRPC and HTTP."""
    from tests.harness.tls import TlsProxy

    proxy = TlsProxy(("127.0.0.1", free_port()), certs / f"{server}.pem", certs / f"{server}.key")
    try:
        for endpoint, protocol in [(f"127.0.0.1:{proxy.port}", "grpc"),
                                   (f"https://127.0.0.1:{proxy.port}", "http/protobuf")]:
            otlp = {"endpoint": endpoint, "protocol": protocol,
                    "tls": {"insecure": False, "ca_file": str(certs / ca)}}
            result = run_cli("run", _config(write, otlp, protocol[:4]))
            assert result.code == 1, result.stderr
            no_traceback(result.stderr)
            assert f"TLS: certificate verify failed for the OTLP endpoint {endpoint}: " in (
                result.stderr)
            assert says in result.stderr, result.stderr
            assert f"(CA file in use: tls.ca_file {certs / ca})" in result.stderr
            assert "cannot reach" not in result.stderr
    finally:
        proxy.close()
