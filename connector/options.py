"""What one run is asked to do (RunOptions), and the script (or topology) loaded once,
seeded (prepare)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from connector.config import Config, ConfigError
from connector.events.script import Script, ScriptLoadError, load_script
from connector.events.topology import topology_script
from connector.identity import Identity
from connector.replay.wiring import SetupError, replay_script
from connector.synth import TopologyError

__all__ = ["RunOptions", "prepare"]


@dataclass
class RunOptions:
    mode: str = "live"
    max_events: int | None = None
    duration: float | None = None
    batch_size: int = 1000
    identity: Identity = field(default_factory=Identity)  # the worker's share of the schedule
    checkpoint_every: float | None = None  # --checkpoint: settle and save this often (s)
    manifest: Path | None = None  # --manifest (or the config's manifest:): file or folder
    manifest_sample: int = 1  # --manifest-sample: one trace in N


def prepare(config: Config, seed: int | None) -> Script:
    """Seed `random`, then load the script once (so the seed covers module-level draws)."""
    if seed is not None:
        random.seed(seed)
    if config.event.replay is not None:
        try:
            return replay_script(config)
        except SetupError as exc:
            raise ConfigError(exc.problems) from None
    if config.event.topology is not None:
        try:
            return topology_script(config.event.topology)
        except TopologyError as exc:
            raise ConfigError([f"event.topology.path: {p}" for p in exc.problems]) from None
    try:
        return load_script(config.event.script)
    except ScriptLoadError as exc:
        raise ConfigError([f"event.script.path: {exc}"]) from None
