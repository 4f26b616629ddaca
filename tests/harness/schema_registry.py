"""A real Schema Registry for tests: plain helpers, no pytest fixtures.

Uses $SCHEMA_REGISTRY_URL when set, otherwise `scripts/local-schema-registry start`
(installs rivven-schema once with cargo, then starts in milliseconds).
"""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local-schema-registry"


def schema_registry_url() -> str:
    if url := os.environ.get("SCHEMA_REGISTRY_URL"):
        return url.rstrip("/")
    how = (
        "run `scripts/local-schema-registry start` in the repo root (needs cargo once, to "
        "install rivven-schema), or set SCHEMA_REGISTRY_URL to a running Schema Registry"
    )
    try:
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), "start"], capture_output=True, text=True, timeout=1800
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"local Schema Registry unavailable ({e}); {how}") from e
    found = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    if proc.returncode or "SCHEMA_REGISTRY_URL" not in found:
        tail = "\n".join(proc.stderr.splitlines()[-20:])
        raise RuntimeError(f"local Schema Registry unavailable (exit {proc.returncode}); {how}\n{tail}")
    return found["SCHEMA_REGISTRY_URL"]


def delete_subjects(url: str, prefix: str) -> None:
    """Soft then hard delete of every subject starting with `prefix` (a test's own)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    client = SchemaRegistryClient({"url": url})
    for subject in client.get_subjects():
        if subject.startswith(prefix):
            client.delete_subject(subject)
            client.delete_subject(subject, permanent=True)
