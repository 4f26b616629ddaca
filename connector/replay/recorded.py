"""The `recorded` input: ticks at the recording's own times, its gaps divided by `speed`,
from the input's start (loops follow one another, one first gap apart). It reads the
recording named by `event.replay` (linked to it when the config is read); the replay then
takes one record per tick, in the same order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo

from pydantic import Field, PrivateAttr

from connector.identity import Identity
from connector.inputs.base import InputConfig
from connector.replay.config import ReplayConfig
from connector.replay.player import played
from connector.replay.sources import open_source

__all__ = ["HORIZON", "Config", "implied_end", "link", "ticks"]

# The recording ends the run (the replay stops the ticks): as a window, it has no end of
# its own that could be known without reading it all.
HORIZON = timedelta(days=365 * 100)


class Config(InputConfig):
    speed: float = Field(1.0, gt=0, le=1e6, description="2.0 plays the gaps twice as fast")
    _replay: ReplayConfig | None = PrivateAttr(None)
    _tz: tzinfo = PrivateAttr(UTC)


def link(config: Config, replay: ReplayConfig | None, tz: tzinfo) -> None:
    config._replay, config._tz = replay, tz


def implied_end(config: Config, origin: datetime) -> datetime | None:
    """No end of its own (the recording ends the run) unless `end` cuts it short."""
    return None if config.end is not None else origin + HORIZON


def ticks(
    config: Config,
    start: datetime,
    end: datetime | None,
    origin: datetime | None = None,
    identity: Identity = Identity(),  # noqa: B008
) -> Iterator[datetime]:
    if config._replay is None:  # refused when the config is read
        return
    source = open_source(config._replay, config._tz)
    base = origin or start
    tz, speed = start.tzinfo, config.speed
    first = previous = None  # the pass's first recorded time, the last tick
    shift = timedelta(0)  # where this pass starts, from `base`
    gap: timedelta | None = None  # between passes: the recording's first gap
    loop = -1
    for n, record in played(source, config._replay.loops):
        if n != loop:  # a new pass
            if previous is not None:
                shift = (previous - base) + (gap or timedelta(seconds=1))
            loop, first = n, None
        when = record.when
        if when is None:  # no time of its own: right after the one before
            tick = previous or base + shift
        else:
            if first is None:
                first = when
            elif gap is None and when > first:
                gap = (when - first) / speed
            tick = base + shift + (when - first) / speed
            if previous is not None and tick < previous:  # logs keep their order
                tick = previous
        if end is not None and tick >= end:
            return
        previous = tick
        # every record has its tick, even one already past in live mode (played at once):
        # the replay takes one record per tick
        yield tick.astimezone(tz)
