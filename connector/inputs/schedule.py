"""The run's schedule as a value: each input's window, resolved once, and the merged stream.

`schedule(config, mode, now)` resolves every input's start, end and origin against `now`
and checks them (a bad window is a config error, named by its key). The CLI computes it
once before anything starts and hands it to the workers and the pipeline; live mode
anchors it again (`at`) at the moment every output is ready, because `start: now` and
relative times count from then. Iterating a `Schedule` gives a fresh merged stream of
(timestamp, input index) each time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from connector.config import Config, ConfigError, InputEntry
from connector.fields import resolve_time
from connector.identity import Identity
from connector.inputs import INPUTS, merge, rate

__all__ = ["Schedule", "Window", "schedule"]


@dataclass(frozen=True)
class Window:
    """One input's resolved window: ticks in [start, end), counted from `origin`."""

    start: datetime  # live: moved past ticks already gone
    end: datetime | None  # None: no end
    origin: datetime  # where the input's own shape counts from


@dataclass(frozen=True)
class Schedule:
    inputs: tuple[InputEntry, ...]
    windows: tuple[Window, ...]
    mode: str
    now: datetime  # what `now` and relative times were resolved against
    tz: tzinfo
    identity: Identity = field(default_factory=Identity)

    def __iter__(self) -> Iterator[tuple[datetime, int]]:
        return self.ticks()

    def ticks(self, worker: int = 0, workers: int = 1) -> Iterator[tuple[datetime, int]]:
        """The merged (timestamp, input index) stream; under --workers, every `workers`-th
        timestamp from `worker` on (a deterministic split)."""
        streams = []
        for entry, window in zip(self.inputs, self.windows, strict=True):
            settings = entry.settings
            ticks = INPUTS[entry.plugin].ticks(
                settings, window.start, window.end, window.origin, self.identity
            )
            if settings.count > 1:  # each timestamp, `count` times in a row
                ticks = _repeat_each(ticks, settings.count)
            streams.append(ticks)
        stream = merge(streams)
        return stream if workers <= 1 else itertools.islice(stream, worker, None, workers)

    def at(self, anchor: datetime) -> Schedule:
        """Live mode: the same config resolved against `anchor` (ConfigError when an end
        has passed meanwhile). Backfill windows do not move."""
        if self.mode != "live":
            return self
        return _resolve(self.inputs, self.tz, self.mode, anchor, self.identity)

    def first(self) -> datetime | None:
        return next(iter(self), (None, 0))[0]

    @property
    def last_end(self) -> datetime | None:
        """Where the whole schedule ends; None when an input has no end."""
        ends = [w.end for w in self.windows]
        return None if None in ends else max(ends)  # type: ignore[type-var]

    def target_rates(self, now: datetime | None, workers: int = 1) -> list[float | None]:
        """Per rate input, the timestamps per second one worker's share is scheduled to
        emit at `now` (None: the run is over, 0); None for the other inputs."""
        return [
            None
            if e.plugin != "rate"
            else 0.0
            if now is None
            else rate.target_rate(e.settings, w.origin, now, self.identity) / workers
            for e, w in zip(self.inputs, self.windows, strict=True)
        ]


def schedule(config: Config, mode: str, now: datetime, identity: Identity = Identity()) -> Schedule:  # noqa: B008
    """Every input's window resolved against `now`. Raises ConfigError for bad windows."""
    return _resolve(tuple(config.input), config.tz, mode, now, identity)


def _resolve(
    inputs: Sequence[InputEntry], tz: tzinfo, mode: str, now: datetime, identity: Identity
) -> Schedule:
    windows, problems = [], []
    for i, entry in enumerate(inputs):
        settings, where = entry.settings, f"input[{i}].{entry.plugin}"
        if settings.start == "never":
            problems.append(f"{where}.start: 'never' is for end (no end); start needs a time")
            continue
        start = resolve_time(settings.start, now, tz) if settings.start is not None else None
        end = resolve_time(settings.end, now, tz) if settings.end not in (None, "never") else None
        origin = start or now.astimezone(tz)  # where the input's own shape counts from
        implied = INPUTS[entry.plugin].implied_end(settings, origin)
        if end is not None and implied is not None and end != implied:
            problems.append(
                f"{where}.end: {end.isoformat()} disagrees with the end of the stages, "
                f"{implied.isoformat()} (start + {implied - origin}); drop end, "
                "or set repeat: true to run the stages again until end"
            )
            continue
        end = end or implied
        if mode == "backfill" and end is None:
            problems.append(f"{where}.end: required in backfill mode (where should it stop?)")
            continue
        if start is None or (mode == "live" and start < now):
            start = now.astimezone(tz)  # live: ticks already past are skipped
        if mode == "live" and end is not None and end <= start:
            problems.append(
                f"{where}.end: {end.isoformat()} has passed; nothing is left to run live "
                "(use --mode backfill to replay the window)"
            )
            continue
        if end is not None and end <= start:
            problems.append(
                f"{where}.end: {end.isoformat()} is not after start {start.isoformat()}"
            )
            continue
        windows.append(Window(start, end, origin))
    if problems:
        raise ConfigError(problems)
    return Schedule(tuple(inputs), tuple(windows), mode, now, tz, identity)


def _repeat_each(ticks: Iterator[datetime], count: int) -> Iterator[datetime]:
    return itertools.chain.from_iterable(itertools.repeat(ts, count) for ts in ticks)
