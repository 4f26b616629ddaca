"""Which process this is: replica i of N (the chart's pods) and worker k of M (--workers).

Read once, by the CLI, from the environment the chart sets; handed to the inputs (a
sharded rate takes its replica's share) and the outputs (a transactional id per process).
No plugin reads `CONNECTOR_*` variables itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

__all__ = ["REPLICAS", "REPLICA_INDEX", "Identity"]

REPLICAS = "CONNECTOR_REPLICAS"
REPLICA_INDEX = "CONNECTOR_REPLICA_INDEX"


@dataclass(frozen=True)
class Identity:
    replica: int = 0
    replicas: int = 1
    worker: int = 0
    workers: int = 1

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Identity:
        """Replica index and count from the chart's variables ((0, 1) when unset); raises
        ValueError naming them when they do not fit together."""
        env = os.environ if environ is None else environ
        replicas = int(env.get(REPLICAS) or 1)
        index = int(env.get(REPLICA_INDEX) or 0)
        if replicas < 1 or not 0 <= index < replicas:
            raise ValueError(f"{REPLICA_INDEX}={index} must be in [0, {REPLICAS}={replicas})")
        return cls(index, replicas)

    def as_worker(self, worker: int, workers: int) -> Identity:
        return replace(self, worker=worker, workers=workers)

    @property
    def share(self) -> tuple[int, int]:
        """(replica index, replica count): what a sharded input splits by."""
        return self.replica, self.replicas
