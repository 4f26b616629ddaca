"""Load shapes through the real CLI on the clock: what ran is exactly the schedule, and
/metrics and the progress log show the target beside what was achieved."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from connector.inputs import rate
from connector.testing import free_port
from tests.harness.cli import run_cli, wait_for
from tests.harness.metrics import scrape

STAMP = "def produce(p):\n    return p['timestamp'].isoformat()\n"


@pytest.mark.wallclock
def test_a_live_ramp_produces_exactly_its_schedule_second_by_second(write, tmp_path):
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)  # after start-up
    stages = [{"duration": 4, "target": 1000}, {"duration": 2, "target": 1000}]
    write("s.py", STAMP)
    out = tmp_path / "events.txt"
    config = write("c.yaml", f"""
        input:
          - name: ramp
            rate: {{stages: [{{duration: 4, target: 1000}}, {{duration: 2, target: 1000}}], start: "{start.isoformat()}"}}
        event: {{script: {{path: s.py}}}}
        output: [{{file: {{path: {out}}}}}]
    """)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector", "run", str(config), "--metrics-port", str(port),
         "--progress-interval", "1", "--linger", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # mid-ramp: 2.5 s in, the target is 625/s
        wait_for("2.5 s of the run", lambda: datetime.now(UTC) >= start + timedelta(seconds=2.5), 30)
        metrics = scrape(port)
        target = metrics[("connector_input_target_rate", (("input", "ramp"),))]
        assert 500 < target < 750, target
        behind = metrics[("connector_schedule_behind_seconds", ())]
        assert 0 <= behind < 1
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    expected = list(rate.ticks(rate.Config(stages=stages), start, None))
    got = [datetime.fromisoformat(line) for line in out.read_text().splitlines()]
    assert got == expected  # every timestamp of the shape, in order, none else
    per_second = Counter(int((ts - start).total_seconds()) for ts in got)
    assert [per_second[s] for s in range(6)] == [125, 375, 625, 875, 1000, 1000]
    assert "target" in err and "timestamps/s" in err, err  # the progress log shows the target


def test_a_sharded_input_needs_an_absolute_start(write):
    write("s.py", STAMP)
    config = write("c.yaml", """
        input: [{rate: {stages: [{duration: 1, target: 5}], shard: true, start: now}}]
        event: {script: {path: s.py}}
    """)
    result = run_cli("validate", config)
    assert result.code == 2
    assert "input[0].rate: shard: true needs an absolute start" in result.stderr


def test_the_sharded_replicas_of_a_live_ramp_add_up(write, tmp_path):
    """Three replicas (as the chart runs them), one absolute start: their union is the
    single schedule, without duplicates or gaps."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=10)  # all started
    write("s.py", STAMP)
    procs, outs = [], []
    for index in range(3):
        out = tmp_path / f"r{index}.txt"
        outs.append(out)
        config = write(f"c{index}.yaml", f"""
            input: [{{rate: {{stages: [{{duration: 2, target: 300}}, {{duration: 1, target: 0}}], shard: true, start: "{start.isoformat()}"}}}}]
            event: {{script: {{path: s.py}}}}
            output: [{{file: {{path: {out}}}}}]
        """)
        env = {"CONNECTOR_REPLICAS": "3", "CONNECTOR_REPLICA_INDEX": str(index), "PATH": ""}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "connector", "run", str(config), "--metrics-port", "0", "--quiet"],
            env=env, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    union = sorted(datetime.fromisoformat(line) for out in outs for line in out.read_text().splitlines())
    single = list(rate.ticks(rate.Config(stages=[{"duration": 2, "target": 300},
                                                 {"duration": 1, "target": 0}]), start, None))
    assert union == single and len(single) == 450
