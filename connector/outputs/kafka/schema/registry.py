"""The Schema Registry: its config keys, and the client that registers (or looks up) the
schemas once at start and checks their compatibility for `validate`. Nothing here runs
per event."""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

from pydantic import Field, field_validator

from connector.fields import ConfigPath, Strict
from connector.logs import add_secret, add_url_secrets, redact
from connector.outputs.base import OutputError
from connector.outputs.kafka.schema.files import Loaded, load, subject
from connector.outputs.kafka.schema.proto_references import references
from connector.outputs.kafka.schema.serializer import Serializer

__all__ = ["Registry", "RegistryTls", "connect", "preload", "problems"]


class RegistryTls(Strict):
    ca_file: ConfigPath | None = Field(None, description="CA bundle that signs the registry")
    cert_file: ConfigPath | None = Field(None, description="client certificate (mutual TLS)")
    key_file: ConfigPath | None = Field(None, description="client key (mutual TLS)")


class Registry(Strict):
    url: str = Field(min_length=1, description="http(s)://host:port of the Schema Registry")
    basic_auth: str | None = Field(None, description="USER:PASSWORD, from ${VARS}")
    timeout: float = Field(10.0, gt=0, description="seconds to reach the registry at start")
    tls: RegistryTls | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        add_url_secrets(value)  # before any message can show it
        if not re.match(r"https?://[^/\s]", value):
            raise ValueError(f"{redact(value)!r} is not an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("basic_auth")
    @classmethod
    def _user_password(cls, value: str | None) -> str | None:
        if value is not None and ":" not in value:
            raise ValueError("expected USER:PASSWORD")
        return value

    def client_config(self, timeout: float | None = None) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "url": self.url,
            "timeout": max(1, math.ceil(timeout or self.timeout)),
            "max.retries": 0,  # connect() retries until schema_registry.timeout itself
        }
        if self.basic_auth:
            conf["basic.auth.user.info"] = self.basic_auth
        if self.tls:
            for key, path in (
                ("ssl.ca.location", self.tls.ca_file),
                ("ssl.certificate.location", self.tls.cert_file),
                ("ssl.key.location", self.tls.key_file),
            ):
                if path is not None:
                    conf[key] = str(path)
        return conf

    def register_secrets(self) -> None:
        if self.basic_auth:
            add_secret(self.basic_auth)
            add_secret(self.basic_auth.partition(":")[2])
        add_url_secrets(self.url)


def preload(config):
    """The registry client for connect(), made when the output is built, with the rest of
    the program's imports: importing it costs about 0.8 s of CPU (OAuth and JOSE
    libraries) and making it 0.1 s (TLS context); no request is sent yet."""
    config.schema_registry.register_secrets()
    return _client(config.schema_registry)


def _client(registry: Registry, timeout: float | None = None):
    from confluent_kafka.schema_registry import SchemaRegistryClient

    # the HTTP client logs every request at INFO: a line per subject at each start
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)

    return SchemaRegistryClient(registry.client_config(timeout))


def _cause(exc: Exception) -> str:
    return redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def connect(config, client=None) -> tuple[Serializer | None, Serializer | None]:
    """Register (or look up) the value and key schemas; the serializers for them. Retries
    an unreachable registry until schema_registry.timeout, then raises OutputError."""
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    registry = config.schema_registry
    registry.register_secrets()
    client = client or _client(registry)
    deadline = time.monotonic() + registry.timeout
    out: list[Serializer | None] = []
    for part, spec in (("value", config.value_schema), ("key", config.key_schema)):
        if spec is None:
            out.append(None)
            continue
        loaded = load(spec)
        name = subject(config, part, loaded)
        while True:
            try:
                if config.auto_register:
                    refs = references(client, loaded, register=True)
                    candidate = Schema(loaded.text, loaded.schema_type, refs)
                    schema_id = client.register_schema(name, candidate)
                else:
                    latest = client.get_latest_version(name)
                    schema_id = latest.schema_id
                    loaded = Loaded(
                        loaded.format, latest.schema.schema_str, f"subject {name}", loaded.proto
                    )
                break
            except SchemaRegistryError as exc:
                what = "register" if config.auto_register else "find the latest version of"
                raise OutputError(
                    redact(
                        f"the schema registry at {registry.url} refused to {what} subject "
                        f"{name}: {exc.error_message} (HTTP {exc.http_status_code}, "
                        f"code {exc.error_code})"
                    )
                ) from None
            except ValueError as exc:  # the registered schema does not parse here
                raise OutputError(redact(str(exc))) from None
            except Exception as exc:  # connection refused, timeouts, TLS...
                if time.monotonic() >= deadline:
                    raise OutputError(
                        f"cannot reach the schema registry at {redact(registry.url)} within "
                        f"{registry.timeout:g}s ({_cause(exc)}); check schema_registry.url "
                        "and that the registry is up, or raise schema_registry.timeout"
                    ) from None
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        out.append(Serializer(loaded, name, schema_id))
    return out[0], out[1]


def problems(config, timeout: float = 5.0) -> tuple[list[str], list[str]]:
    """For `validate`: each schema against the latest version registered under its subject,
    when the registry answers (compatibility as the registry judges it). Returns the
    incompatibilities, and notes (a registry that does not answer)."""
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    registry = config.schema_registry
    found: list[str] = []
    notes: list[str] = []
    if registry is None:
        return found, notes
    registry.register_secrets()
    client = _client(registry, min(timeout, registry.timeout))
    for part, spec in (("value", config.value_schema), ("key", config.key_schema)):
        if spec is None:
            continue
        loaded = load(spec)
        name = subject(config, part, loaded)
        try:  # the REST call itself: test_compatibility() keeps only the yes/no, not why
            refs = references(client, loaded, register=False)
            request = Schema(loaded.text, loaded.schema_type, refs).to_dict()
            answer = client._rest_client.post(
                f"compatibility/subjects/{_quote(name)}/versions/latest?verbose=true",
                body=request,
            )
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:  # nothing registered yet: anything goes
                continue
            found.append(f"{part}_schema: the registry refused the check: {exc}")
            continue
        except LookupError as exc:  # an import not registered yet: the first run registers it
            notes.append(f"{part}_schema: {exc}; compatibility not checked")
            continue
        except Exception as exc:
            notes.append(
                f"schema registry at {redact(registry.url)} did not answer "
                f"({_cause(exc)}); compatibility not checked"
            )
            break
        if not answer.get("is_compatible", True):
            why = "; ".join(answer.get("messages") or []) or "no reason given"
            found.append(
                f"{part}_schema {spec.path} is incompatible with the latest version of "
                f"subject {name}: {why}"
            )
    return found, notes


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
