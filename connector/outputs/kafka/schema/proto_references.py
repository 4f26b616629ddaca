"""A .proto's imports as Schema Registry references: each imported file (the well-known
types aside) registered under its import name, as confluent-kafka's ProtobufSerializer
names them, and referenced by the file that imports it. Runs at start, never per event."""

from __future__ import annotations

from typing import Any

from connector.outputs.kafka.schema.files import Loaded

__all__ = ["references"]


def references(client: Any, loaded: Loaded, register: bool) -> list:
    """The references the schema is registered (or checked) with. With `register`, each
    imported file is registered first; without, each is looked up (a LookupError names
    one that is not registered)."""
    if loaded.format != "protobuf" or not loaded.parsed.imports:
        return []
    from confluent_kafka.schema_registry import Schema, SchemaReference
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    done: dict[str, Any] = {}
    for name, text, deps in loaded.parsed.imports:  # each after what it imports
        schema = Schema(text, "PROTOBUF", [done[d] for d in deps if d in done])
        schema_id = client.register_schema(name, schema) if register else None
        try:
            version = client.lookup_schema(name, schema).version
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise LookupError(f"import {name} is not registered under subject {name}") from None
            version = _find(client, name, text, schema_id)  # a registry without lookup
        done[name] = SchemaReference(name, name, version)
    return [done[d] for d in loaded.parsed.references if d in done]


def _find(client: Any, subject: str, text: str, schema_id: int | None) -> int:
    """The version under `subject` with this id (or text), newest first."""
    for version in sorted(client.get_versions(subject), reverse=True):
        found = client.get_version(subject, version)
        if found.schema_id == schema_id or found.schema.schema_str.strip() == text.strip():
            return found.version
    raise LookupError(f"import {subject} differs from every version under subject {subject}")
