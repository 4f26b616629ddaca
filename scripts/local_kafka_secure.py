"""The secured listeners of `scripts/local-kafka start --secure`: a small CA made in the
state folder with the openssl CLI, the listeners' server.properties lines, the SCRAM user
added at format time (the KRaft way), and the KEY=VALUE lines that say where it all is.

Listeners (each on its own port, beside PLAINTEXT on PORT and the controller on PORT+1):
  PORT+2  SASL_SSL, SCRAM-SHA-512        PORT+3  SASL_SSL, PLAIN
  PORT+4  SSL with client auth (mTLS)    PORT+5  SSL, an expired server certificate
  PORT+6  SSL, a certificate for another host name (not 127.0.0.1 / localhost)
One user (name and a random password, kept in tls/users.env, mode 0600) for both SASL
mechanisms. Certificates in tls/: ca.pem (the CA clients trust), client.pem/.key (signed by
it), expired-client, other-ca-client (signed by other-ca.pem), broker*.pem (the servers').
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

__all__ = ["LISTENERS", "format_args", "lines", "make_pki", "properties", "users"]

# name -> (port offset, security protocol)
LISTENERS = {
    "SCRAM": (2, "SASL_SSL"),
    "PLAIN": (3, "SASL_SSL"),
    "MTLS": (4, "SSL"),
    "EXPIRED": (5, "SSL"),
    "WRONGHOST": (6, "SSL"),
}
USER = "connector"
_DAYS = "3650"


def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"openssl {args[0]} failed: {r.stderr.strip()}")


def _key(name: str, cwd: Path) -> None:
    # PKCS#8, unencrypted: what Kafka's PEM keystore and librdkafka both read
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", f"{name}.key", cwd=cwd)
    os.chmod(cwd / f"{name}.key", 0o600)


def _ca(name: str, cwd: Path) -> None:
    _key(name, cwd)
    _openssl("req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.pem",
             "-days", _DAYS, "-subj", f"/CN=local-kafka {name}", cwd=cwd)


def _signed(name: str, ca: str, cn: str, san: str | None, cwd: Path,
            expired: bool = False) -> None:
    _key(name, cwd)
    _openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
             cwd=cwd)
    ext = cwd / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    if expired:
        # `x509 -days` takes no past dates; `ca` takes explicit ones
        db = cwd / f"{name}.db"
        db.mkdir(exist_ok=True)
        (db / "index.txt").write_text("")
        conf = cwd / f"{name}.cnf"
        conf.write_text(
            "[ca]\ndefault_ca=ca\n[ca]\n"
            f"dir={db}\ndatabase={db}/index.txt\nnew_certs_dir={db}\n"
            f"certificate={cwd / ca}.pem\nprivate_key={cwd / ca}.key\n"
            "default_md=sha256\npolicy=any\nrand_serial=yes\nunique_subject=no\n"
            "[any]\ncommonName=supplied\n"
        )
        _openssl("ca", "-batch", "-config", str(conf), "-in", f"{name}.csr", "-out",
                 f"{name}.pem", "-startdate", "20200101000000Z", "-enddate",
                 "20200102000000Z", "-notext", "-extfile", str(ext), cwd=cwd)
    else:
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
                 f"{ca}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", _DAYS,
                 "-extfile", str(ext), cwd=cwd)


def make_pki(tls: Path) -> None:
    """The CA and every certificate, once per state folder (kept across restarts)."""
    if (tls / "done").exists():
        return
    tls.mkdir(parents=True, exist_ok=True)
    local = "IP:127.0.0.1,DNS:localhost"
    _ca("ca", tls)
    _ca("other-ca", tls)
    _signed("broker", "ca", "localhost", local, tls)
    _signed("broker-expired", "ca", "localhost", local, tls, expired=True)
    _signed("broker-wronghost", "ca", "other.example", "DNS:other.example", tls)
    _signed("client", "ca", "connector-client", None, tls)
    _signed("expired-client", "ca", "connector-client", None, tls, expired=True)
    _signed("other-ca-client", "other-ca", "connector-client", None, tls)
    for name in ("broker", "broker-expired", "broker-wronghost"):
        # Kafka's PEM keystore: the private key, then the certificate
        key, cert = (tls / f"{name}.key").read_text(), (tls / f"{name}.pem").read_text()
        store = tls / f"{name}-keystore.pem"
        store.write_text(key + cert)
        os.chmod(store, 0o600)
    password = secrets.token_urlsafe(18)
    env = tls / "users.env"
    env.write_text(f"KAFKA_SASL_USERNAME={USER}\nKAFKA_SASL_PASSWORD={password}\n")
    os.chmod(env, 0o600)
    (tls / "done").write_text("")


def users(tls: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (tls / "users.env").read_text().splitlines())
    return dict(pairs)


def properties(host: str, port: int, tls: Path) -> dict[str, str]:
    """server.properties lines that replace/extend the plaintext broker's."""
    ports = {name: port + offset for name, (offset, _proto) in LISTENERS.items()}
    secured = ",".join(f"{name}://{host}:{p}" for name, p in ports.items())
    password = users(tls)["KAFKA_SASL_PASSWORD"]
    store = {
        "ssl.keystore.type": "PEM",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls / "ca.pem"),
    }
    props = {
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{port + 1},{secured}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port},{secured}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
        + ",".join(f"{name}:{proto}" for name, (_o, proto) in LISTENERS.items()),
        "ssl.keystore.location": str(tls / "broker-keystore.pem"),
        **store,
        "listener.name.scram.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.scram.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.plain.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.plain.plain.sasl.jaas.config":
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{USER}="{password}";',
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.expired.ssl.keystore.location": str(tls / "broker-expired-keystore.pem"),
        "listener.name.wronghost.ssl.keystore.location":
            str(tls / "broker-wronghost-keystore.pem"),
    }
    for name in ("expired", "wronghost"):
        props[f"listener.name.{name}.ssl.keystore.type"] = "PEM"
    return props


def format_args(tls: Path) -> list[str]:
    """kafka-storage format's --add-scram: the SCRAM user exists from the first start."""
    password = users(tls)["KAFKA_SASL_PASSWORD"]
    return ["--add-scram", f"SCRAM-SHA-512=[name={USER},password={password}]"]


def lines(host: str, port: int, tls: Path) -> list[str]:
    """What `start --secure` and `status` print, before KAFKA_BOOTSTRAP_SERVERS."""
    out = [f"KAFKA_{name}_BOOTSTRAP={host}:{port + offset}"
           for name, (offset, _proto) in LISTENERS.items()]
    out.append(f"KAFKA_TLS_DIR={tls}")
    out += [f"{k}={v}" for k, v in users(tls).items()]
    return out
