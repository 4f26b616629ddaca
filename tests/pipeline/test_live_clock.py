"""Live mode on a fake clock: `Pipeline(..., clock=FakeClock())` runs an hour of a live
schedule in-process, without sleeping, and every produce() call happens exactly when its
timestamp comes due. What the wall clock made approximate (when a tick ran, where
--duration cut, how late the run was) is exact here."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.config import parse_config
from connector.inputs import rate
from connector.outputs.base import OutputConfig
from connector.outputs.handle import OutputHandle
from connector.pacing import Pacer
from connector.pipeline import Pipeline, RunOptions, prepare
from connector.testing import FakeClock, ListSink

T0 = datetime(2026, 1, 1, tzinfo=UTC)  # FakeClock's default start
SCRIPT = "def produce(params):\n    return params['timestamp'].isoformat()\n"


class ClockedSink(ListSink):
    """Notes the run's clock at each write (the clock moves only while the run waits for
    it, and a batch is handed on before each wait: the time its events were produced).
    With `slow_start`, start() takes that long (a slow connect)."""

    def __init__(self, clock: FakeClock, slow_start: float = 0.0):
        super().__init__(OutputConfig(), "clocked")
        self.clock, self.slow_start = clock, slow_start
        self.written: list[tuple[datetime, float]] = []  # (scheduled, produced at)
        self.on_write: Callable[[], None] = lambda: None

    def start(self) -> None:
        self.clock.advance(self.slow_start)
        super().start()

    def _take(self, events: list[str]) -> None:
        now = self.clock.time()
        self.written += [(datetime.fromisoformat(e), now) for e in events]
        self.on_write()
        super()._take(events)


def _run(folder: Path, inputs: list[dict], duration: float | None = None,
         slow_start: float = 0.0, on_write: Callable[[Pipeline], None] | None = None):
    (folder / "s.py").write_text(SCRIPT)
    raw = {"mode": "live", "input": inputs, "event": {"script": {"path": "s.py"}},
           "output": [{"null": {}}]}  # the sink is handed to the Pipeline instead
    config = parse_config(raw, folder)
    clock = FakeClock()
    sink = ClockedSink(clock, slow_start)
    pipeline = Pipeline(config, prepare(config, None), [OutputHandle(sink)],
                        RunOptions(mode="live", duration=duration), clock=clock)
    if on_write is not None:
        sink.on_write = lambda: on_write(pipeline)
    code = pipeline.run(T0)
    scheduled = [ts for ts, _ in sink.written]
    ran = [at for _, at in sink.written]
    return code, pipeline, clock, scheduled, ran


def test_an_hour_of_live_rate_runs_each_tick_exactly_when_due(tmp_path):
    code, pipeline, clock, scheduled, ran = _run(
        tmp_path, [{"rate": {"per_second": 2, "end": "+1h"}}])
    assert code == 0 and pipeline.snapshot().exhausted
    assert scheduled == [T0 + timedelta(milliseconds=500 * k) for k in range(7200)]
    assert ran == [ts.timestamp() for ts in scheduled]  # produced on the dot
    assert pipeline.snapshot().lag.sum == 0.0
    assert clock.time() == (T0 + timedelta(seconds=3599.5)).timestamp()  # no sleep past it


def test_an_hour_of_live_cron_runs_each_tick_exactly_when_due(tmp_path):
    inputs = [{"cron": {"expression": "*/10 * * * * *", "end": "+1h"}},
              {"cron": {"expression": "*/15 * * * *", "end": "+1h"}}]
    code, _, _, scheduled, ran = _run(tmp_path, inputs)
    assert code == 0
    every_10s = [T0 + timedelta(seconds=10 * k) for k in range(360)]
    every_15m = [T0 + timedelta(minutes=15 * k) for k in range(4)]
    assert scheduled == sorted(every_10s + every_15m)  # merged in time order, both inputs
    assert ran == [ts.timestamp() for ts in scheduled]


def test_duration_cuts_the_schedule_exactly_and_the_run_lasts_it(tmp_path):
    code, pipeline, clock, scheduled, _ = _run(
        tmp_path, [{"rate": {"per_second": 4}}], duration=90.3)
    assert code == 0
    # ticks every 0.25 s from the start: the last before 90.3 s is at 90.25 s
    assert scheduled == [T0 + timedelta(milliseconds=250 * k) for k in range(362)]
    s = pipeline.snapshot()
    assert s.stop_reason == "--duration 90.3s reached"
    # it lingered to the end, not past it (to float precision: sleeps of 0.1 s add up)
    assert clock.slept == pytest.approx(90.3, abs=1e-6)
    assert clock.time() == pytest.approx(T0.timestamp() + 90.3, abs=1e-6)


def test_the_lag_stays_zero_on_a_fake_clock(tmp_path):
    behind: list[float] = []

    def note(pipeline: Pipeline) -> None:
        if pipeline.calls[0] % 1000 == 0:  # mid-run, as /metrics would read it
            behind.append(pipeline.snapshot().behind)

    code, pipeline, _, scheduled, _ = _run(tmp_path, [{"rate": {"per_second": 10}}],
                                           duration=3600, on_write=note)
    s = pipeline.snapshot()
    assert code == 0 and len(scheduled) == 36_000
    assert s.lag.count == 36_000 and s.lag.sum == 0.0
    assert s.lag.counts[0] == 36_000  # all in the first bucket
    assert behind == [0.0] * 36


def test_a_slow_output_start_moves_the_anchor_not_the_schedule(tmp_path):
    """`start: now`, relative ends and --duration count from when every output is ready."""
    ready = T0 + timedelta(seconds=42)
    code, pipeline, _, scheduled, ran = _run(
        tmp_path, [{"rate": {"per_second": 1, "end": "+10s"}}], slow_start=42.0)
    assert code == 0
    assert scheduled == [ready + timedelta(seconds=k) for k in range(10)]
    assert ran == [ts.timestamp() for ts in scheduled]
    assert pipeline.snapshot().lag.sum == 0.0  # late to start is not late to schedule

    code, _, clock, scheduled, _ = _run(tmp_path, [{"rate": {"per_second": 1}}], duration=5,
                                        slow_start=42.0)
    assert scheduled == [ready + timedelta(seconds=k) for k in range(5)]
    assert clock.time() == pytest.approx(ready.timestamp() + 5, abs=1e-6)  # as above


def test_an_absolute_start_that_passed_while_starting_skips_the_past_ticks(tmp_path):
    end = T0 + timedelta(seconds=20)
    inputs = [{"rate": {"per_second": 1, "start": T0.isoformat(), "end": end.isoformat()}}]
    code, _, _, scheduled, ran = _run(tmp_path, inputs, slow_start=7.5)
    assert code == 0
    # live: ticks due before the outputs were ready are skipped; the grid stays on T0
    assert scheduled == [T0 + timedelta(seconds=k) for k in range(8, 20)]
    assert ran == [ts.timestamp() for ts in scheduled]


def test_a_live_ramp_produces_exactly_its_schedule_and_shows_its_target(tmp_path):
    """A ramp to 1000/s over 4 s, then 2 s at 1000/s: every timestamp of the shape, second
    by second, and the target rate /metrics shows follows the shape as the run goes."""
    stages = [{"duration": 4, "target": 1000}, {"duration": 2, "target": 1000}]
    targets: list[tuple[float, float]] = []  # (seconds in, the target rate then)
    writes = itertools.count()

    def note(pipeline: Pipeline) -> None:
        if next(writes) % 100 == 0:  # a snapshot is a copy: now and then is enough
            seconds = pipeline.clock.time() - T0.timestamp()
            targets.append((seconds, pipeline.snapshot().target_rates[0]))

    code, pipeline, _, scheduled, ran = _run(tmp_path, [{"rate": {"stages": stages}}],
                                             on_write=note)
    assert code == 0
    assert scheduled == list(rate.ticks(rate.Config(stages=stages), T0, None))
    per_second = Counter(int((ts - T0).total_seconds()) for ts in scheduled)
    assert [per_second[s] for s in range(6)] == [125, 375, 625, 875, 1000, 1000]
    assert ran == [ts.timestamp() for ts in scheduled] and pipeline.snapshot().lag.sum == 0.0
    assert len(targets) > 30
    for seconds, target in targets:  # 250/s more each second, then 1000/s
        assert target == pytest.approx(min(250 * seconds, 1000), abs=0.01), seconds


def test_an_output_that_blocks_while_the_run_waits_for_its_tick_is_behind():
    """An output served while the run waits for the next tick (its batch timer) may block
    there, waiting for room: past the awaited tick the run is behind, not asleep."""
    clock = FakeClock()
    seen: list[tuple[float, bool]] = []
    block = [0.0]

    def poll() -> None:
        clock.advance(block[0])
        block[0] = 0.0
        seen.append((pace.behind(), pace.sleeping))

    pace = Pacer(clock, poll, [], lambda: False)
    pace.due = clock.time()
    assert pace.wait_until(clock.time() + 0.5)  # on time: asleep, never behind
    assert seen and all(s == (0.0, True) for s in seen[:-1]) and seen[-1] == (0.0, False)

    seen.clear()
    block[0] = 2.0  # no room for 2 s
    assert pace.wait_until(clock.time() + 0.5)
    assert seen == [(1.5, False)]
