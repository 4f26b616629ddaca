"""A TLS handshake of our own, to say why a client's TLS failed: the server's certificate
not signed by the CA file, expired, or not valid for the host; or a port that speaks TLS
(or does not). Clients (librdkafka, gRPC) report these generically or as "unreachable";
the outputs ask here once, when their own connection failed or before they start."""

from __future__ import annotations

import socket
import ssl

__all__ = ["server_problem", "speaks_tls"]


def server_problem(host: str, port: int, ca_file: str | None, check_hostname: bool = True,
                   timeout: float = 3.0, client: tuple[str, str] | None = None) -> str | None:
    """Why the server's certificate is not trusted, or why the server refused ours (mTLS:
    `client` is the certificate and key files), in words a user acts on; None when all is
    well (or the server could not be asked: that is another failure's to say)."""
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else (
        ssl.create_default_context())
    ctx.check_hostname = check_hostname
    try:
        if client is not None:
            ctx.load_cert_chain(*client)
        with socket.create_connection((host, port), timeout=timeout) as sock, ctx.wrap_socket(
            sock, server_hostname=host
        ) as tls:
            return _refused(tls, client)
    except ssl.SSLCertVerificationError as exc:
        message = str(exc.verify_message or exc)
    except (OSError, ssl.SSLError, ValueError):
        return None
    lowered = message.lower()
    if "expired" in lowered:
        return "the server's certificate has expired; renew it on the server"
    if "hostname mismatch" in lowered or "ip address mismatch" in lowered:
        return (f"hostname mismatch: the server's certificate is not valid for {host}; "
                "connect by a name its subjectAltName lists, or reissue it with this one")
    if "not yet valid" in lowered:
        return "the server's certificate is not valid yet (check the clocks)"
    return (f"the server's certificate is not signed by a CA in the CA file ({message}); "
            "point the CA file at the CA that signed it")


def _refused(tls: ssl.SSLSocket, client: tuple[str, str] | None) -> str | None:
    """TLS 1.3 servers judge the client's certificate after the handshake: their alert is
    the first thing read (a server waiting for our request sends nothing)."""
    tls.settimeout(0.3)
    try:
        tls.recv(1)
    except ssl.SSLError as exc:
        text = str(exc).lower()
        if "certificate" not in text and "unknown ca" not in text:
            return None
        if client is None:
            return ("the server requires a client certificate (mTLS) and none is configured "
                    "(alert: " + text.split("alert", 1)[-1].split("(")[0].strip() + ")")
        return (f"the server refused the client certificate {client[0]} (expired, or not "
                "signed by a CA it trusts)")
    except OSError:
        return None
    return None


def speaks_tls(host: str, port: int, timeout: float = 5.0) -> bool:
    """A TLS handshake of our own gets a server's answer (a certificate, or an alert)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, ctx.wrap_socket(
            sock, server_hostname=host
        ):
            return True
    except ssl.SSLError as exc:
        # an alert from the server is TLS; a connection closed or reset mid-handshake is not
        return "alert" in str(exc).lower()
    except (OSError, ValueError):
        return False
