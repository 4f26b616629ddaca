"""The live view in a pseudo-terminal, read back with pyte: a fast backfill, a ramp,
--workers 2 with a row per worker, a Kafka run stopped by SIGTERM. Its last frame's
numbers are the summary's. Off a terminal the progress lines stay; --quiet shows nothing."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from tests.harness.summary import Summary
from tests.harness.terminal import Terminal, number, view_rows

pytestmark = pytest.mark.timeout(300)

SCRIPT = """
def produce(params):
    return ['{"n": 1}', '{"n": 2}']
"""


def config(tmp_path, inputs: str, outputs: str = "  - null: {}\n    name: sink\n",
           mode: str = "backfill") -> str:
    (tmp_path / "s.py").write_text(SCRIPT)
    path = tmp_path / "c.yaml"
    path.write_text(f"mode: {mode}\nmetrics: {{port: 0}}\ninput:\n{inputs}"
                    f"event:\n  script: {{path: s.py}}\noutput:\n{outputs}")
    return str(path)


def check_last_frame(screen: list[str], summary: Summary) -> dict[str, list[str]]:
    """The view's outputs and inputs tables hold the summary's numbers."""
    assert summary.printed, "\n".join(screen)
    outputs = view_rows(screen, "outputs")
    for name, account in summary.outputs.items():
        row = outputs[name]
        assert number(row[1]) == account.delivered and number(row[2]) == account.failed, row
        assert number(row[4]) == 0  # nothing in flight once the run is over
    inputs = view_rows(screen, "inputs")
    events = sum(number(row[4]) for name, row in inputs.items() if name != "input")
    assert events == summary.produced
    return inputs


def test_a_fast_backfill(tmp_path):
    cfg = config(tmp_path, '  - cron: {expression: "* * * * * *", '
                           'start: "2026-01-01T00:00:00Z", end: "2026-01-02T00:00:00Z"}\n')
    term = Terminal("run", cfg, cwd=tmp_path)
    assert term.wait() == 0
    screen = term.screen()
    summary = Summary.parse("\n".join(screen))
    assert summary.produced == 2 * 86_400
    check_last_frame(screen, summary)
    assert any("schedule 100% (86,400/86,400)" in line for line in screen), "\n".join(screen)


@pytest.mark.wallclock
def test_a_ramp_shows_target_and_achieved_rates_and_a_sparkline(tmp_path):
    cfg = config(tmp_path, "  - rate:\n      stages:\n        - {duration: 4s, target: 400}\n"
                           "        - {duration: 2s, target: 400}\n", mode="live")
    term = Terminal("run", cfg, "--duration", "30", cwd=tmp_path)
    live = term.wait_screen("rate-0", timeout=30)  # while it runs: a target, a rate
    row = view_rows(live, "inputs")["rate-0"]
    assert number(row[1]) > 0, row
    header = next(line for line in live if "elapsed" in line)
    left = re.search(r"left 0:00:(\d\d)", header)  # the schedule's 6 s, not --duration's 30
    assert left and int(left[1]) <= 6, header
    assert term.wait() == 0
    screen = term.screen()
    inputs = check_last_frame(screen, Summary.parse("\n".join(screen)))
    spark = inputs["rate-0"][5]
    assert len(set(spark)) > 1 and set(spark) <= set("▁▂▃▄▅▆▇█"), spark  # it rose


def test_two_workers_merged_and_per_worker(tmp_path):
    cfg = config(tmp_path, '  - cron: {expression: "* * * * * *", '
                           'start: "2026-01-01T00:00:00Z", end: "2026-01-01T12:00:00Z"}\n',
                 "  - file: {path: out.txt}\n    name: file\n")
    term = Terminal("run", cfg, "--workers", "2", "--view-workers", cwd=tmp_path)
    assert term.wait() == 0
    screen = term.screen()
    summary = Summary.parse("\n".join(screen))
    check_last_frame(screen, summary)
    workers = {k: v for k, v in view_rows(screen, "workers").items() if k != "worker"}
    assert sorted(workers) == ["0", "1"], "\n".join(screen)
    assert sum(number(row[2]) for row in workers.values()) == summary.delivered("file")
    assert len((tmp_path / "out.txt").read_text().splitlines()) == summary.delivered("file")


def test_a_kafka_run_stopped_by_sigterm(tmp_path, kafka_bootstrap, kafka_topic):
    topic = kafka_topic("live")
    cfg = config(tmp_path, "  - rate: {per_second: 300}\n",
                 f'  - kafka: {{bootstrap_servers: "{kafka_bootstrap}", topic: {topic}}}\n'
                 "    name: kafka\n", mode="live")
    term = Terminal("run", cfg, cwd=tmp_path)
    term.wait_screen("kafka ", timeout=60)
    term.signal(signal.SIGTERM)
    assert term.wait() == 0
    screen = term.screen()
    summary = Summary.parse("\n".join(screen))
    assert "SIGTERM received" in summary.stop
    check_last_frame(screen, summary)
    assert any("ended: SIGTERM received" in line for line in screen), "\n".join(screen)


def test_off_a_terminal_the_progress_lines_stay_view_forces_the_view_quiet_shows_nothing(
    tmp_path,
):
    cfg = config(tmp_path, "  - rate: {per_second: 200}\n", mode="live")
    piped = subprocess.run([sys.executable, "-m", "connector", "run", cfg, "--duration", "2.5",
                            "--progress-interval", "1"], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert "INFO connector.progress: progress: " in piped.stderr
    assert "┏" not in piped.stderr and "outputs" not in piped.stderr
    forced = subprocess.run([sys.executable, "-m", "connector", "run", cfg, "--duration", "1.5",
                             "--view"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert [line.strip() for line in forced.stderr.splitlines()].count("outputs") == 1  # off a terminal: the last frame
    assert "progress: " not in forced.stderr
    term = Terminal("run", cfg, "--duration", "2.5", "--quiet", cwd=tmp_path)
    assert term.wait() == 0
    text = term.text()
    assert "┏" not in text and "progress" not in text and "summary: " in text


@pytest.mark.wallclock  # a pause before each line, so frames are drawn between them
@pytest.mark.parametrize("workers", ["1", "2"])  # 2: each worker's lines, through the parent
def test_log_lines_and_the_scripts_prints_go_above_the_view(tmp_path, workers):
    (tmp_path / "s.py").write_text(
        "import logging, sys, time\nn = 0\ndef produce(params):\n    global n\n    n += 1\n"
        "    if n % 20000 == 0:\n        time.sleep(1.2)\n"
        "        print(f'script says {n}', file=sys.stderr)\n"
        "        logging.getLogger('connector.x').warning('a warning %d', n)\n"
        "    return '{}'\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text('mode: backfill\nmetrics: {port: 0}\ninput:\n  - cron: {expression: "* * * * * *", '
                   'start: "2026-01-01T00:00:00Z", end: "2026-01-02T00:00:00Z"}\n'
                   "event:\n  script: {path: s.py}\noutput:\n  - null: {}\n    name: sink\n")
    term = Terminal("run", cfg, "--workers", workers, cwd=tmp_path, rows=60)
    assert term.wait() == 0
    screen = term.screen()
    said = [i for i, line in enumerate(screen) if line.startswith("script says")]
    warned = [i for i, line in enumerate(screen) if "WARNING connector.x: a warning" in line]
    assert len(said) == len(warned) == 4, "\n".join(screen)
    titles = [i for i, line in enumerate(screen) if line.strip() == "outputs"]
    assert len(titles) == 1 and max(said + warned) < titles[0], "\n".join(screen)
    # no frame torn by a line written under it: one header, the last frame's
    assert sum(line.startswith("connector c |") for line in screen) == 1, "\n".join(screen)
    check_last_frame(screen, Summary.parse("\n".join(screen)))
