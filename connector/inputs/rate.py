"""`rate`: evenly spaced timestamps, `per_second` of them, for load generation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count, repeat, takewhile
from operator import add, methodcaller, mul, truediv

from pydantic import Field

from connector.inputs.base import InputConfig

__all__ = ["Config", "replica_share", "ticks"]

_SECOND = timedelta(seconds=1)


class Config(InputConfig):
    per_second: float = Field(gt=0)
    shard: bool = Field(
        False,
        description="split per_second across CONNECTOR_REPLICAS replicas (this one is "
        "CONNECTOR_REPLICA_INDEX)",
    )


def replica_share(environ: dict[str, str] | None = None) -> tuple[int, int]:
    """(index, replicas) from CONNECTOR_REPLICA_INDEX / CONNECTOR_REPLICAS; (0, 1) when unset."""
    env = os.environ if environ is None else environ
    replicas = int(env.get("CONNECTOR_REPLICAS") or 1)
    index = int(env.get("CONNECTOR_REPLICA_INDEX") or 0)
    if replicas < 1 or not 0 <= index < replicas:
        raise ValueError(
            f"CONNECTOR_REPLICA_INDEX={index} must be in [0, CONNECTOR_REPLICAS={replicas})"
        )
    return index, replicas


def ticks(config: Config, start: datetime, end: datetime | None) -> Iterator[datetime]:
    # Replica i of N takes every N-th slot of the full-rate grid, offset by i:
    # together the replicas emit exactly the unsharded stream, interleaved.
    index, replicas = replica_share() if config.shard else (0, 1)
    # start + SECOND * (k / rate): multiplied, never accumulated, so no drift; C iterators
    # all the way, so no Python frame per timestamp.
    offsets = map(
        mul, repeat(_SECOND), map(truediv, count(index, replicas), repeat(config.per_second))
    )
    # In UTC: aware arithmetic in a DST zone would be wall-clock arithmetic.
    tz, start = start.tzinfo, start.astimezone(UTC)
    grid = map(add, repeat(start), offsets)
    if end is not None:
        grid = takewhile(end.astimezone(UTC).__gt__, grid)
    return grid if tz is UTC else map(methodcaller("astimezone", tz), grid)
