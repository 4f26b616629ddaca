"""`rate`: timestamps at a rate, constant (`per_second`) or shaped (`stages`), for load tests.

Timestamp k (k = 0, 1, 2...) comes at the moment the cumulative count N(t) = integral of
the rate reaches k. A constant rate gives start + k / per_second; stages make the rate
piecewise linear (ramps, holds, steps), so k's moment solves a quadratic. Every moment is
computed from its segment's start, never accumulated: no drift. All of it runs in C-level
iterators (map over range), so a shaped schedule costs no Python frame per timestamp.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import accumulate, chain, count, dropwhile, islice, repeat, takewhile
from operator import add, floordiv, methodcaller, mul, sub, truediv
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from connector.fields import Strict
from connector.identity import Identity
from connector.inputs.base import InputConfig

__all__ = ["Config", "Stage", "implied_end", "target_rate", "ticks"]

_US = 1_000_000
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms))+$")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _duration(value: Any) -> float:
    """`90s`, `2m`, `1h30m`, `250ms` or a number of seconds; 0 is a step change."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 90s, 2m, 1h30m or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.match(text := value.replace(" ", "")):
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
        seconds = sum(float(n) * _UNITS[unit] for n, unit in parts)
    else:
        raise ValueError(
            f"invalid duration {value!r}: use 90s, 2m, 1h30m, 250ms or a number of seconds"
        )
    if not math.isfinite(seconds) or not 0 <= seconds <= 366 * 86400:
        raise ValueError(f"duration {value!r} must be between 0 and 366 days")
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]


class Stage(Strict):
    duration: Duration = Field(description="ramp from the previous target to `target` over this")
    target: float = Field(ge=0, le=1e9, allow_inf_nan=False, description="timestamps per second")


class Config(InputConfig):
    per_second: float | None = Field(None, gt=0, le=1e9, allow_inf_nan=False)
    stages: list[Stage] | None = Field(
        None, min_length=1, description="a load shape: ramps and holds, piecewise linear"
    )
    repeat: bool = Field(False, description="stages: start again after the last, until `end`")
    shard: bool = Field(
        False,
        description="split the rate across CONNECTOR_REPLICAS replicas (this one is "
        "CONNECTOR_REPLICA_INDEX)",
    )

    @model_validator(mode="after")
    def _one_shape(self) -> Config:
        if (self.per_second is None) == (self.stages is None):
            raise ValueError("give either per_second or stages, not both (nor neither)")
        if self.stages is None and self.repeat:
            raise ValueError("repeat applies to stages only")
        if self.stages is not None:
            if not any(s.target > 0 for s in self.stages):
                raise ValueError("stages: every target is 0, so nothing would ever be emitted")
            if sum(s.duration for s in self.stages) <= 0:
                raise ValueError("stages: the durations add up to 0")
        if self.shard and not isinstance(self.start, datetime):
            raise ValueError(
                "shard: true needs an absolute start (an ISO-8601 time; the chart sets one "
                "from schedule.start): with `now` or a relative start each replica would count "
                "from its own start-up moment, and their shares would not fit together"
            )
        return self

    def shape_seconds(self) -> float:
        """One pass over the stages, in seconds."""
        return sum(s.duration for s in self.stages or ())


def ticks(
    config: Config,
    start: datetime,
    end: datetime | None,
    origin: datetime | None = None,
    identity: Identity = Identity(),  # noqa: B008 - a frozen value
) -> Iterator[datetime]:
    """Timestamps in [start, end) of the schedule that counts from `origin` (default:
    `start`): live mode moves `start` past ticks already gone, the shape stays put."""
    # Replica i of N takes every N-th k, offset by i: together the replicas emit exactly
    # the unsharded stream, interleaved.
    index, replicas = identity.share if config.shard else (0, 1)
    # In UTC: aware arithmetic in a DST zone would be wall-clock arithmetic.
    tz, start = start.tzinfo, start.astimezone(UTC)
    origin = start if origin is None else min(origin.astimezone(UTC), start)
    end = None if end is None else end.astimezone(UTC)
    if config.per_second is not None:
        grid = _constant(_exact(config.per_second), origin, start, end, index, replicas)
    else:
        if not config.repeat:
            last = implied_end(config, origin)
            end = last if end is None else min(end, last)
        grid = _staged(config, origin, start, index, replicas)
        if start > origin:
            grid = dropwhile(start.__gt__, grid)
        if end is not None:
            grid = takewhile(end.__gt__, grid)
    return grid if tz is UTC else map(methodcaller("astimezone", tz), grid)


def implied_end(config: Config, origin: datetime) -> datetime | None:
    """Where the stages end when they do not repeat (None: the input has no end of its own)."""
    if config.stages is None or config.repeat:
        return None
    return origin + timedelta(seconds=config.shape_seconds())


def _exact(rate: float) -> Fraction:
    """The rate as the fraction the user meant: 2.5 -> 5/2, 1/600 -> 1/600."""
    exact = Fraction(rate)
    meant = exact.limit_denominator(10**9)
    return meant if meant and abs(meant - exact) <= exact * Fraction(1, 10**12) else exact


def _constant(
    rate: Fraction,
    origin: datetime,
    start: datetime,
    end: datetime | None,
    index: int,
    replicas: int,
) -> Iterator[datetime]:
    """origin + k / rate, rounded to the microsecond in exact integer arithmetic; over
    [origin, end) exactly ceil((end - origin) * rate) of them (several may share a
    microsecond above a million per second)."""
    p, q = rate.numerator, rate.denominator
    micro = timedelta(microseconds=1)
    first = -((-((start - origin) // micro) * p) // (_US * q))  # the first k at or after start
    first += (index - first) % replicas
    span = None if end is None else (end - origin) // micro
    ks = (
        count(first, replicas)
        if span is None
        else range(first, max(0, -((-span * p) // (_US * q))), replicas)
    )
    period, inexact = divmod(_US * q, p)
    if not inexact:  # a whole number of microseconds apart: add it, as cron's fixed gaps do
        step = timedelta(microseconds=period * replicas)
        grid = accumulate(repeat(step), initial=origin + timedelta(microseconds=period * first))
        return grid if span is None else islice(grid, len(ks))
    # round(k * 10^6 * q / p) as (2 k 10^6 q + p) // 2p
    micros = map(floordiv, map(add, map(mul, ks, repeat(2 * _US * q)), repeat(p)), repeat(2 * p))
    if span is not None:  # the last may round up onto `end`: keep the window half-open
        micros = map(min, micros, repeat(max(0, span - 1)))
    return map(add, repeat(origin), map(timedelta, repeat(0), repeat(0), micros))


def _segments(config: Config, skip: float) -> Iterator[tuple[float, float, float, float, float]]:
    """(offset seconds, duration, rate at its start, rate at its end, N at its start) for
    each stage, forever with repeat; whole cycles that end before `skip` seconds are
    stepped over in one go."""
    shape, cycle = config.stages or [], config.shape_seconds()
    # cycle 0 ramps up from 0, every later one from the last target
    first_cycle, later_cycle = _integral(shape, 0.0), _integral(shape, shape[-1].target)
    cycles = range(1) if not config.repeat else count(max(0, int(skip // cycle) - 1))
    for n in cycles:
        offset = n * cycle  # multiplied, never accumulated
        done = 0.0 if n == 0 else first_cycle + (n - 1) * later_cycle
        previous = 0.0 if n == 0 else shape[-1].target
        for stage in shape:
            yield offset, stage.duration, previous, stage.target, done
            done += (previous + stage.target) / 2 * stage.duration
            offset += stage.duration
            previous = stage.target


def _integral(shape: list[Stage], previous: float) -> float:
    total = 0.0
    for stage in shape:
        total += (previous + stage.target) / 2 * stage.duration
        previous = stage.target
    return total


def _staged(
    config: Config, origin: datetime, start: datetime, index: int, replicas: int
) -> Iterator[datetime]:
    skip = (start - origin).total_seconds()

    def pieces() -> Iterator[Iterator[datetime]]:
        for offset, duration, r0, r1, done in _segments(config, skip):
            if duration <= 0 or offset + duration <= skip:
                continue
            total = done + (r0 + r1) / 2 * duration
            first = math.ceil(done)
            first += (index - first) % replicas
            last = math.ceil(total)
            if first < last:
                yield _ramp(origin, offset, done, r0, (r1 - r0) / duration, first, last, replicas)

    return chain.from_iterable(pieces())


def _ramp(
    start: datetime,
    offset: float,
    done: float,
    r0: float,
    slope: float,
    first: int,
    last: int,
    step: int,
) -> Iterator[datetime]:
    """Moments of k in [first, last) on r(tau) = r0 + slope * tau: N(tau) = r0 tau + slope
    tau^2 / 2 = k - done, solved in the form that is stable for ramps up and down."""

    def deltas() -> Iterator[float]:
        return map(sub, range(first, last, step), repeat(done))

    if slope == 0:
        taus = map(truediv, deltas(), repeat(r0))
    elif r0 == 0:
        taus = map(math.sqrt, map(mul, deltas(), repeat(2 / slope)))
    else:
        squares = map(add, repeat(r0 * r0), map(mul, deltas(), repeat(2 * slope)))
        roots = map(math.sqrt, map(max, squares, repeat(0.0)))  # >= 0 despite rounding
        taus = map(truediv, map(mul, deltas(), repeat(2.0)), map(add, repeat(r0), roots))
    seconds = map(add, repeat(offset), taus)
    return map(add, repeat(start), map(timedelta, repeat(0), seconds))


def target_rate(
    config: Config,
    start: datetime,
    now: datetime,
    identity: Identity = Identity(),  # noqa: B008 - a frozen value
) -> float:
    """Timestamps per second this replica's share is scheduled to emit at `now`."""
    replicas = identity.replicas if config.shard else 1
    if config.per_second is not None:
        return config.per_second / replicas if now >= start else 0.0
    t = (now - start).total_seconds()
    if t < 0 or (not config.repeat and t >= config.shape_seconds()):
        return 0.0
    if config.repeat and t >= config.shape_seconds():
        cycles = int(t // config.shape_seconds())
        t -= cycles * config.shape_seconds()
        previous = config.stages[-1].target
    else:
        previous = 0.0
    for stage in config.stages:
        if t < stage.duration:
            return (previous + (stage.target - previous) * t / stage.duration) / replicas
        t -= stage.duration
        previous = stage.target
    return previous / replicas
