"""The rate input's arithmetic: exact counts, and load shapes (stages) as pure functions."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import pytest
from pydantic import ValidationError

from connector.config import ConfigError, parse_config
from connector.identity import Identity
from connector.inputs import rate
from connector.inputs.schedule import schedule

T0 = datetime(2026, 2, 20, 10, 0, 0, tzinfo=UTC)


def stamps(config: rate.Config, seconds: float | None = None, n: int | None = None,
           identity: Identity = Identity()):  # noqa: B008
    end = None if seconds is None else T0 + timedelta(seconds=seconds)
    it = rate.ticks(config, T0, end, identity=identity)
    return list(islice(it, n)) if n else list(it)


def staged(*stages, **kw) -> rate.Config:
    return rate.Config(stages=[{"duration": d, "target": t} for d, t in stages], **kw)


def integral(config: rate.Config, t: float) -> float:
    """N(t) by the shape's own definition, written independently of the code under test."""
    total, previous, offset, cycle = 0.0, 0.0, 0.0, config.shape_seconds()
    while True:
        for stage in config.stages:
            d, target = stage.duration, stage.target
            if t <= offset + d:
                tau = t - offset
                if d:
                    total += previous * tau + (target - previous) / d * tau * tau / 2
                return total
            total += (previous + target) / 2 * d
            offset += d
            previous = target
        if not config.repeat:
            return total
        assert cycle > 0


@pytest.mark.parametrize(
    ("per_second", "seconds", "expected"),
    [(3_000_000, 1, 3_000_000), (3, 100, 300), (0.7, 10, 7), (1 / 3, 10, 4), (7, 0.5, 4),
     (1_000_000, 2.5, 2_500_000), (2.5, 1, 3)],
)
def test_constant_counts_are_exact_at_any_rate(per_second, seconds, expected):
    got = stamps(rate.Config(per_second=per_second), seconds)
    assert len(got) == expected == math.ceil(seconds * per_second - 1e-9)
    assert got[0] == T0 and got[-1] < T0 + timedelta(seconds=seconds)
    assert got == sorted(got)


def test_constant_rate_is_start_plus_k_over_rate():
    got = stamps(rate.Config(per_second=7), 100)
    for k, ts in enumerate(got):
        assert abs((ts - T0) - timedelta(seconds=k / 7)) <= timedelta(microseconds=1)


@pytest.mark.parametrize(
    "shape",
    [
        [(10, 1000)],  # ramp up from 0
        [(5, 300), (5, 300)],  # ramp, hold
        [(4, 800), (6, 0)],  # up, then down to 0
        [(3, 50), (2, 0), (4, 0), (3, 400)],  # a zero stretch in the middle
        [(0, 500), (5, 500), (0, 20), (5, 20)],  # step changes
        [(2.5, 1234.5), ("1.5s", 77.7)],
    ],
)
def test_per_second_counts_follow_the_integral(shape):
    config = staged(*shape)
    got = stamps(config)
    total = integral(config, config.shape_seconds())
    assert len(got) == math.ceil(total - 1e-9)
    assert got == sorted(got) and got[0] >= T0
    assert got[-1] < T0 + timedelta(seconds=config.shape_seconds())
    for a in range(math.ceil(config.shape_seconds())):
        lo, hi = T0 + timedelta(seconds=a), T0 + timedelta(seconds=a + 1)
        window = sum(1 for ts in got if lo <= ts < hi)
        expected = integral(config, a + 1) - integral(config, a)
        assert abs(window - expected) <= 1, (a, window, expected)


def test_a_zero_stretch_emits_nothing():
    got = stamps(staged((2, 100), (0, 0), (3, 0), (2, 100)))
    assert not [ts for ts in got if T0 + timedelta(seconds=2) < ts < T0 + timedelta(seconds=5)]


def test_repeat_ramps_from_the_last_target_and_runs_until_end():
    config = staged((2, 100), (2, 10), repeat=True)
    got = stamps(config, 12)
    assert len(got) == math.ceil(integral(config, 12) - 1e-9)
    # the second cycle's first stage ramps from 10, not from 0
    assert integral(config, 4.5) - integral(config, 4) == pytest.approx(10 * 0.5 + 45 / 2 * 0.25)
    second = [ts for ts in got if T0 + timedelta(seconds=4) <= ts < T0 + timedelta(seconds=5)]
    assert abs(len(second) - (integral(config, 5) - integral(config, 4))) <= 1


def test_without_repeat_the_input_ends_after_the_last_stage():
    config = staged((1, 10), (1, 10))
    assert stamps(config) == stamps(config, 3600)
    assert len(stamps(config)) == 15


def test_a_constant_stage_equals_per_second():
    assert len(stamps(staged((0, 40), (10, 40)))) == len(stamps(rate.Config(per_second=40), 10))


@pytest.mark.parametrize("replicas", [1, 2, 3, 7])
@pytest.mark.parametrize("shape", [[(5, 900), (3, 900), (4, 0)], [(2, 333), (1, 17)]])
def test_sharded_stages_add_up_to_the_single_schedule(replicas, shape):
    single = stamps(staged(*shape))
    union = []
    for index in range(replicas):
        union += stamps(staged(*shape, shard=True, start=T0), identity=Identity(index, replicas))
    assert sorted(union) == single


def test_stages_with_count_and_beside_other_inputs():
    config = parse_config(
        {
            "input": [
                {"rate": {"stages": [{"duration": "2s", "target": 4}], "count": 3,
                          "start": T0.isoformat()}},
                {"cron": {"expression": "* * * * * *", "start": T0.isoformat(),
                          "end": (T0 + timedelta(seconds=2)).isoformat()}},
            ],
            "event": {"script": {"path": __file__}},
        },
        base_dir=Path(__file__).parent,
    )
    got = list(schedule(config, "backfill", T0))
    ramp = [ts for ts, i in got if i == 0]
    assert len(ramp) == 3 * 4  # integral 4 over 2 s, each timestamp 3 times
    assert [i for _, i in got].count(1) == 2
    assert [ts for ts, _ in got] == sorted(ts for ts, _ in got)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("2m", 120), ("1h30m", 5400), (45, 45), (0, 0), ("250ms", 0.25), ("1m30s", 90)],
)
def test_durations(text, seconds):
    assert rate.Stage(duration=text, target=1).duration == seconds


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"per_second": 5, "stages": [{"duration": 1, "target": 1}]}, "either per_second or stages"),
        ({}, "either per_second or stages"),
        ({"per_second": 5, "repeat": True}, "repeat applies to stages only"),
        ({"stages": [{"duration": 5, "target": 0}]}, "every target is 0"),
        ({"stages": [{"duration": "5 minutes", "target": 1}]}, "invalid duration"),
        ({"stages": [{"duration": -1, "target": 1}]}, "between 0 and 366 days"),
        ({"stages": [{"duration": 1, "target": -3}]}, "greater than or equal to 0"),
        ({"stages": [{"duration": 0, "target": 5}]}, "add up to 0"),
        ({"stages": []}, "at least 1 item"),
    ],
)
def test_bad_shapes_are_refused(settings, message):
    with pytest.raises(ValidationError, match=message):
        rate.Config(**settings)


def test_target_rate_follows_the_shape():
    config = staged((10, 1000), (10, 1000), (10, 0), repeat=True)
    at = lambda s: rate.target_rate(config, T0, T0 + timedelta(seconds=s))  # noqa: E731
    assert [at(-1), at(0), at(5), at(15), at(25)] == [0, 0, 500, 1000, 500]
    assert at(35) == pytest.approx(0 + 1000 * 5 / 10)  # cycle 2 ramps from the last target, 0
    sharded = staged((10, 1000), shard=True, start=T0)
    assert rate.target_rate(sharded, T0, T0 + timedelta(seconds=5), Identity(0, 4)) == 125
    assert rate.target_rate(rate.Config(per_second=40), T0, T0) == 40


@pytest.mark.parametrize(
    "config",
    [staged((3, 500), (2, 500), (3, 0), repeat=True), staged((4, 900), (4, 100)),
     rate.Config(per_second=333.3)],
)
@pytest.mark.parametrize("late", [0.5, 3.25, 7, 41.3])
def test_a_late_start_keeps_the_shape_where_it_was(config, late):
    """Live mode skips ticks already gone; the rest are where the whole schedule has them."""
    end = T0 + timedelta(seconds=60)
    whole = list(rate.ticks(config, T0, end))
    start = T0 + timedelta(seconds=late)
    assert list(rate.ticks(config, start, end, origin=T0)) == [ts for ts in whole if ts >= start]


def _schedule(inputs, mode="backfill"):
    config = parse_config({"input": inputs, "event": {"script": {"path": __file__}}},
                          base_dir=Path(__file__).parent)
    return schedule(config, mode, T0)


def test_stages_need_no_end_and_refuse_one_that_disagrees():
    stages = [{"duration": "1m", "target": 10}, {"duration": "1m", "target": 10}]
    got = list(_schedule([{"rate": {"stages": stages, "start": T0.isoformat()}}]))
    assert len(got) == 300 + 600 and got[-1][0] < T0 + timedelta(minutes=2)
    same = _schedule([{"rate": {"stages": stages, "start": T0.isoformat(), "end": "+2m"}}])
    assert len(list(same)) == 900
    with pytest.raises(ConfigError) as err:
        _schedule([{"rate": {"stages": stages, "start": T0.isoformat(), "end": "+3m"}}])
    [problem] = err.value.problems
    assert problem.startswith("input[0].rate.end: 2026-02-20T10:03:00+00:00 disagrees with the "
                              "end of the stages, 2026-02-20T10:02:00+00:00 (start + 0:02:00)")
    with pytest.raises(ConfigError, match="required in backfill"):
        _schedule([{"rate": {"stages": stages, "repeat": True, "start": T0.isoformat()}}])


@pytest.mark.parametrize("per_second", [1000, 250, 4, 0.5, 1_000_000, 3, 7, 1 / 600])
def test_whole_microsecond_periods_take_the_fast_path_to_the_same_grid(per_second):
    """A period of whole microseconds is added, not multiplied: the same timestamps."""
    exact = rate._exact(per_second)
    expected = [T0 + timedelta(microseconds=(2 * k * 10**6 * exact.denominator + exact.numerator)
                               // (2 * exact.numerator)) for k in range(2000)]
    assert stamps(rate.Config(per_second=per_second), n=2000) == expected
    late = T0 + timedelta(seconds=0.3)
    for index in range(3):
        sharded = rate.Config(per_second=per_second, shard=True, start=T0)
        want = [ts for ts in expected[index::3] if ts >= late][:100]
        ticks = rate.ticks(sharded, late, None, origin=T0, identity=Identity(index, 3))
        assert list(islice(ticks, len(want))) == want
