"""The `topology` event plugin: traces, their log lines and RED metrics from a topology file,
no script.

    event:
      topology: {path: shop.yaml, signals: [spans, logs, metrics]}

The file is read once, when the run prepares (a bad file is a config error naming its file,
line and key); each timestamp then makes one trace of a type drawn by weight. `--seed`
seeds `random` before the file is read, and the generator draws its own seed from it, so a
file and a seed give the same traces (worker `w` of `--workers`, seeded `seed + w`, its own).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from connector.events.script import Script
from connector.fields import ConfigPath, Strict, not_a_file
from connector.synth import Generator, load_topology

__all__ = ["TopologyConfig", "topology_script"]


class TopologyConfig(Strict):
    path: ConfigPath
    signals: list[Literal["spans", "logs", "metrics"]] = Field(
        default_factory=lambda: ["spans"],
        min_length=1,
        description="with more than one, each event says which in its `signal` field "
        "(span, log, metric), for `when` routing",
    )

    @field_validator("path")
    @classmethod
    def _exists(cls, value: Path) -> Path:
        if (kind := not_a_file(value)) is not None:
            raise ValueError(f"topology {value} is {kind}, not a file")
        if not value.is_file():
            raise ValueError(f"topology not found: {value}")
        return value


def topology_script(config: TopologyConfig) -> Script:
    """The topology as a script: its produce() makes one trace per call. TopologyError
    when the file cannot be used."""
    generator = Generator(
        load_topology(config.path),
        random.Random(random.getrandbits(64)),
        tuple(dict.fromkeys(config.signals)),
    )
    return Script(generator.produce, config.path.resolve(), "skip")
