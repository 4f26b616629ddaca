"""What every input shares: tags, count, a start/end window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

from pydantic import Field

from connector.fields import Strict, TimeSpec

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
    keeps counting from it. No waiting happens here: the pipeline waits for live
    timestamps in one place. An input whose shape ends by itself also has
    `implied_end(config, origin) -> datetime | None`.
    """

    Config: type[InputConfig]

    @staticmethod
    def ticks(
        config: InputConfig, start: datetime, end: datetime | None, origin: datetime | None = None
    ) -> Iterator[datetime]: ...
