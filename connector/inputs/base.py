"""What every input shares: tags, count, a start/end window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

from pydantic import Field

from connector.fields import Strict, TimeSpec
from connector.identity import Identity

__all__ = ["InputConfig", "InputPlugin"]


class InputConfig(Strict):
    tags: tuple[str, ...] = ()
    count: int = Field(1, gt=0, le=1_000_000, description="produce() calls per timestamp")
    start: TimeSpec | None = None
    end: TimeSpec | None = None


class InputPlugin(Protocol):
    """An input is a pure function of (config, start, end) -> timestamps in order.

    `start` is inclusive, `end` exclusive (None: no end). `origin` is the configured
    start where live mode moved `start` past ticks already gone: a shaped input (rate)
    keeps counting from it. `identity` says which replica this is (a sharded input takes
    its share). No waiting happens here: the pipeline waits for live timestamps in one
    place. `implied_end` is where the input's shape ends by itself (None: it does not).
    """

    Config: type[InputConfig]

    @staticmethod
    def ticks(
        config: InputConfig,
        start: datetime,
        end: datetime | None,
        origin: datetime | None = None,
        identity: Identity = ...,
    ) -> Iterator[datetime]: ...

    @staticmethod
    def implied_end(config: InputConfig, origin: datetime) -> datetime | None: ...
