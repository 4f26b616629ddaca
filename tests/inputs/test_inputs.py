"""Cron and rate semantics as pure functions of (config, start, end): no sleeping."""

from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from connector.config import parse_config
from connector.identity import Identity
from connector.inputs import cron, merge, rate
from connector.inputs.cron import fixed_interval
from connector.inputs.schedule import schedule

T0 = datetime(2026, 2, 20, 10, 0, 0, tzinfo=UTC)


def cron_ticks(expression, start=T0, end=None, n=None, **kw):
    it = cron.ticks(cron.Config(expression=expression, **kw), start, end)
    return list(islice(it, n)) if n else list(it)


def test_six_fields_put_seconds_first():
    assert cron_ticks("*/2 * * * * *", n=3) == [T0, T0 + timedelta(seconds=2), T0 + timedelta(seconds=4)]


def test_five_fields_are_minute_first():
    assert cron_ticks("*/5 * * * *", n=2) == [T0, T0 + timedelta(minutes=5)]
    assert cron_ticks("0 * * * *", n=2) == [T0, T0 + timedelta(hours=1)]


def test_start_inclusive_end_exclusive():
    ticks = cron_ticks("*/5 * * * * *", start=T0, end=T0 + timedelta(minutes=1))
    assert len(ticks) == 12 and ticks[0] == T0 and ticks[-1] == T0 + timedelta(seconds=55)
    # a start between ticks begins at the next one
    assert cron_ticks("*/5 * * * * *", start=T0 + timedelta(seconds=1), n=1) == [
        T0 + timedelta(seconds=5)
    ]


@pytest.mark.parametrize(
    "expression",
    ["* * * * * *", "*/2 * * * * *", "*/15 * * * * *", "7 * * * * *", "30 */5 * * * *",
     "* * * * *", "*/10 * * * *", "0 * * * *", "15 * * * *"],
)
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Asia/Kathmandu"])
def test_fast_path_equals_croniter(expression, zone):
    tz = ZoneInfo(zone) if zone != "UTC" else UTC
    # across the spring-forward night in Berlin
    start = datetime(2026, 3, 29, 0, 0, 3, tzinfo=tz)
    assert fixed_interval(expression) is not None
    ours = cron_ticks(expression, start=start, n=400)
    six = expression if len(expression.split()) == 6 else "0 " + expression
    it = croniter(six, start - timedelta(microseconds=1), second_at_beginning=True)
    theirs = [it.get_next(datetime) for _ in range(400)]
    assert [t.timestamp() for t in ours] == [t.timestamp() for t in theirs]
    assert all(t.tzinfo is not None for t in ours)


@pytest.mark.parametrize("expression", ["0 9 * * *", "*/7 * * * *", "0 0 1 * *", "5,10 * * * * *"])
def test_irregular_expressions_use_croniter(expression):
    assert fixed_interval(expression) is None
    assert len(cron_ticks(expression, n=3)) == 3


def test_cron_in_a_timezone_fires_at_local_time():
    berlin = ZoneInfo("Europe/Berlin")
    ticks = cron_ticks("0 9 * * *", start=datetime(2026, 3, 28, tzinfo=berlin), n=3)
    assert [t.hour for t in ticks] == [9, 9, 9]
    assert [t.utcoffset() for t in ticks] == [timedelta(hours=1), timedelta(hours=2), timedelta(hours=2)]


def test_rate_is_evenly_spaced_without_drift():
    ticks = list(rate.ticks(rate.Config(per_second=3), T0, T0 + timedelta(seconds=100)))
    assert len(ticks) == 300
    assert ticks[-1] == T0 + timedelta(seconds=299 / 3)


def test_rate_shards_interleave_into_the_full_stream():
    config = rate.Config(per_second=10, shard=True, start=T0)
    end = T0 + timedelta(seconds=10)
    shards = []
    for index in range(3):
        shards.append(list(rate.ticks(config, T0, end, identity=Identity(index, 3))))
    assert [len(s) for s in shards] == [34, 33, 33]
    full = list(rate.ticks(rate.Config(per_second=10), T0, end))
    assert sorted(t for s in shards for t in s) == full


def test_replica_share_checks_its_environment():
    assert Identity.from_environ({}).share == (0, 1)
    assert Identity.from_environ({"CONNECTOR_REPLICAS": "4", "CONNECTOR_REPLICA_INDEX": "3"}).share == (3, 4)
    with pytest.raises(ValueError, match="CONNECTOR_REPLICA_INDEX=4"):
        Identity.from_environ({"CONNECTOR_REPLICAS": "4", "CONNECTOR_REPLICA_INDEX": "4"})


def test_merge_orders_by_time_and_keeps_input_order_on_ties():
    a = iter([T0, T0 + timedelta(seconds=2)])
    b = iter([T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)])
    assert list(merge([a, b])) == [
        (T0, 0), (T0, 1), (T0 + timedelta(seconds=1), 1),
        (T0 + timedelta(seconds=2), 0), (T0 + timedelta(seconds=2), 1),
    ]


def _config(inputs, **top):
    return parse_config({"input": inputs, "event": {"script": {"path": __file__}}, **top}, Path("."))


def test_backfill_needs_an_end():
    from connector.config import ConfigError

    with pytest.raises(ConfigError) as err:
        schedule(_config([{"cron": {"expression": "* * * * *"}}]), "backfill", T0)
    assert err.value.problems == [
        "input[0].cron.end: required in backfill mode (where should it stop?)"
    ]


def test_relative_and_now_windows():
    config = _config([{"rate": {"per_second": 1, "start": "-1h", "end": "+30s"}}])
    ticks = list(schedule(config, "backfill", T0))
    assert ticks[0][0] == T0 - timedelta(hours=1) and len(ticks) == 3630


def test_live_skips_past_ticks():
    config = _config([{"cron": {"expression": "0 * * * *", "start": "2020-01-01T00:00:00Z"}}])
    first, _ = next(iter(schedule(config, "live", T0 + timedelta(minutes=1))))
    assert first == T0 + timedelta(hours=1)


def test_timestamps_carry_the_configured_zone():
    config = _config(
        [{"cron": {"expression": "0 * * * *", "start": "2026-02-20T10:00:00+00:00",
                   "end": "2026-02-20T12:00:00+00:00"}}],
        timezone="America/New_York",
    )
    ticks = [t for t, _ in schedule(config, "backfill", T0)]
    assert [t.isoformat() for t in ticks] == ["2026-02-20T05:00:00-05:00", "2026-02-20T06:00:00-05:00"]


def test_rate_keeps_real_time_across_a_dst_change():
    berlin = ZoneInfo("Europe/Berlin")  # 2025-10-26: 03:00 summer time is 02:00 again
    start, end = datetime(2025, 10, 26, 0, 0, tzinfo=berlin), datetime(2025, 10, 26, 4, 0, tzinfo=berlin)
    ticks = list(rate.ticks(rate.Config(per_second=1 / 600), start, end))
    assert len(ticks) == 30  # five real hours, a tick every ten minutes
    gaps = {(b.timestamp() - a.timestamp()) for a, b in pairwise(ticks)}
    assert gaps == {600.0} and all(t.tzinfo is berlin for t in ticks)


def test_merge_orders_by_instant_in_the_repeated_hour():
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2025, 10, 26, 2, 30, tzinfo=berlin)  # fold=0: 00:30 UTC
    second = datetime(2025, 10, 26, 2, 10, fold=1, tzinfo=berlin)  # 01:10 UTC, later
    merged = [ts for ts, _ in merge([iter([second]), iter([first])])]
    assert merged == [first, second]


def test_compound_relative_times_and_an_open_end():
    config = _config([{"rate": {"per_second": 1, "start": "-1h30m", "end": "never"}}])
    first, _ = next(iter(schedule(config, "preview", T0)))
    assert first == T0 - timedelta(hours=1, minutes=30)
    from connector.config import ConfigError

    with pytest.raises(ConfigError) as err:
        schedule(config, "backfill", T0)
    assert err.value.problems == ["input[0].rate.end: required in backfill mode (where should it stop?)"]
    with pytest.raises(ConfigError) as err:
        schedule(_config([{"rate": {"per_second": 1, "start": "never"}}]), "live", T0)
    assert err.value.problems == ["input[0].rate.start: 'never' is for end (no end); start needs a time"]
