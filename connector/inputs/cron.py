"""`cron`: timestamps at the moments a cron expression names.

Six fields put SECONDS FIRST (`*/2 * * * * *` = every 2 s), as the seed
documents; five fields are classic minute-first cron. croniter's own default
reads a sixth field as seconds LAST, so it is always called with
`second_at_beginning=True` here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import accumulate, repeat
from operator import methodcaller

from croniter import CroniterError, croniter
from pydantic import field_validator

from connector.identity import Identity
from connector.inputs.base import InputConfig

__all__ = ["Config", "implied_end", "ticks"]

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class Config(InputConfig):
    expression: str

    @field_validator("expression")
    @classmethod
    def _valid(cls, value: str) -> str:
        fields = value.split()
        if len(fields) not in (5, 6) or not croniter.is_valid(
            _six_fields(fields), second_at_beginning=True
        ):
            raise ValueError(
                f"invalid cron expression '{value}' (5 fields: minute hour day month weekday; "
                "6 fields: second minute hour day month weekday)"
            )
        try:  # well-formed, but some never fire: `0 0 31 2 *` names February 31st
            croniter(_six_fields(fields), _EPOCH, second_at_beginning=True).get_next(datetime)
        except (CroniterError, ValueError, OverflowError):
            raise ValueError(f"cron expression '{value}' never fires (no such date)") from None
        return " ".join(fields)


def _six_fields(fields: list[str]) -> str:
    return " ".join(fields if len(fields) == 6 else ["0", *fields])


def _step(field: str, size: int) -> int | None:
    """Step of `*` or `*/n` when n divides the field's range evenly, else None."""
    if field == "*":
        return 1
    if field.startswith("*/") and field[2:].isdigit():
        n = int(field[2:])
        return n if n > 0 and size % n == 0 else None
    return None


def fixed_interval(expression: str) -> timedelta | None:
    """The constant gap between ticks, for expressions that have one within an hour.

    croniter costs ~20 us a tick; adding a timedelta costs well under 1 us, which
    matters in backfill. Only gaps that divide an hour qualify: a DST shift moves
    local time by a whole hour, so such a grid of instants stays the same grid.
    """
    sec, minute, hour, *days = _six_fields(expression.split()).split()
    if hour != "*" or days != ["*", "*", "*"]:
        return None
    if (n := _step(sec, 60)) is not None:
        return timedelta(seconds=n) if minute == "*" else None
    if not sec.isdigit():
        return None
    if (m := _step(minute, 60)) is not None:
        return timedelta(minutes=m)
    return timedelta(hours=1) if minute.isdigit() else None


def ticks(
    config: Config,
    start: datetime,
    end: datetime | None,
    origin: datetime | None = None,
    identity: Identity = Identity(),  # noqa: B008 - a frozen value
) -> Iterator[datetime]:
    # `origin` and `identity` are unused: a cron expression names wall-clock moments, it
    # has no phase and no share (every replica runs the whole expression).
    tz = start.tzinfo
    it = croniter(
        _six_fields(config.expression.split()),
        start
        - timedelta(microseconds=1),  # croniter's next is strictly after: make start inclusive
        second_at_beginning=True,
    )
    first = it.get_next(datetime)
    step = fixed_interval(config.expression)
    if step is None:
        return _croniter_ticks(it, first, end)
    # A fixed grid, built by C iterators (no Python frame per tick). Add in UTC:
    # aware arithmetic in a DST zone would be wall-clock arithmetic.
    first = first.astimezone(UTC)
    if end is None:
        grid = accumulate(repeat(step), initial=first)
    else:
        n = max(0, -(-(end - first) // step))  # ticks in [first, end)
        grid = accumulate(repeat(step, n - 1), initial=first) if n else iter(())
    return grid if tz is UTC else map(methodcaller("astimezone", tz), grid)


def implied_end(config: Config, origin: datetime) -> datetime | None:
    """A cron expression never ends by itself."""
    return None


def _croniter_ticks(it: croniter, ts: datetime, end: datetime | None) -> Iterator[datetime]:
    while end is None or ts < end:
        yield ts
        ts = it.get_next(datetime)
