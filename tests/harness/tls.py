"""TLS material for tests: the same CA and certificates `scripts/local-kafka start --secure`
makes (scripts/local_kafka_secure.py), in a folder of the test's own. ca.pem signs
broker.pem (SAN 127.0.0.1, localhost: a server's), client.pem and expired-client.pem;
other-ca.pem signs other-ca-client.pem. Keys are beside them (NAME.key)."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import ssl
import threading
from pathlib import Path

from connector.testing import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local_kafka_secure.py"


def make_certificates(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("local_kafka_secure", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_pki(Path(folder))
    return Path(folder)


class TlsProxy:
    """A TLS-terminating proxy on a free port in front of a plaintext TCP service (for a
    server that does not serve TLS itself, as rivven-schema): TLS with `cert`/`key`, and
    with `client_ca` a client certificate signed by it is required (mTLS). Each connection
    is piped both ways on threads; `close()` stops it."""

    def __init__(self, target: tuple[str, int], cert: Path, key: Path,
                 client_ca: Path | None = None):
        self.target = target
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert), str(key))
        if client_ca is not None:
            self.context.load_verify_locations(str(client_ca))
            self.context.verify_mode = ssl.CERT_REQUIRED
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.handshake_errors: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw) -> None:
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.handshake_errors.append(str(exc))
            raw.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            tls.close()
            return
        upstream.settimeout(None)

        def pipe(src, dst) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for end in (src, dst):
                    with contextlib.suppress(OSError):
                        end.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pipe, args=(upstream, tls), daemon=True).start()
        pipe(tls, upstream)

    def close(self) -> None:
        self.listener.close()
