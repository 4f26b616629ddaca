"""What the report says about the run besides its numbers: the config with its secrets
redacted, the script's name and hash, the connector's version, the seed."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from connector import __version__
from connector.config import Config
from connector.logs import secrets

__all__ = ["RunFacts", "redacted"]

# keys whose values are credentials wherever they appear (sasl.password, headers...)
SECRET_KEY = re.compile(
    r"pass|secret|token|credential|authorization|api[._-]?key|private|bearer", re.I
)
HIDDEN = "***"


def redacted(value: Any, key: str = "") -> Any:
    """The config dump with credentials hidden: by key name, and every value registered
    as a secret (logs.add_secret) wherever it appears in a string."""
    if isinstance(value, dict):
        return {k: redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v, key) for v in value]
    if isinstance(value, str):
        if SECRET_KEY.search(key) and value:
            return HIDDEN
        for secret in secrets():
            value = value.replace(secret, HIDDEN)
    elif SECRET_KEY.search(key) and value is not None and not isinstance(value, bool):
        return HIDDEN
    return value


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"


@dataclass(frozen=True)
class RunFacts:
    name: str
    version: str
    mode: str
    seed: int | None
    workers: int
    script: str  # file name
    script_sha256: str
    config: str  # YAML, redacted
    started_at: str  # UTC, ISO 8601

    @classmethod
    def of(
        cls, config: Config, mode: str, seed: int | None, workers: int, script: Path
    ) -> RunFacts:
        dump = redacted(config.model_dump(mode="json", exclude_none=True))
        return cls(
            name=config.name or (config.source.stem if config.source else "config"),
            version=__version__,
            mode=mode,
            seed=seed,
            workers=workers,
            script=script.name,
            script_sha256=_sha256(script),
            config=yaml.safe_dump(dump, sort_keys=False, allow_unicode=True),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
