"""A real Schema Registry for tests: plain helpers, no pytest fixtures.

Uses $SCHEMA_REGISTRY_URL when set, otherwise `scripts/local-schema-registry start`
(installs rivven-schema once with cargo, then starts in milliseconds).
"""

import os
from pathlib import Path

from tests.harness.services import start_service

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local-schema-registry"


def schema_registry_url() -> str:
    if url := os.environ.get("SCHEMA_REGISTRY_URL"):
        return url.rstrip("/")
    how = (
        "run `scripts/local-schema-registry start` in the repo root (needs cargo once, to "
        "install rivven-schema), or set SCHEMA_REGISTRY_URL to a running Schema Registry"
    )
    found = start_service(SCRIPT, "local Schema Registry", ["SCHEMA_REGISTRY_URL"], how, 1800)
    return found["SCHEMA_REGISTRY_URL"]


def delete_subjects(url: str, prefix: str) -> None:
    """Soft then hard delete of every subject starting with `prefix` (a test's own)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    client = SchemaRegistryClient({"url": url})
    for subject in client.get_subjects():
        if subject.startswith(prefix):
            client.delete_subject(subject)
            client.delete_subject(subject, permanent=True)
