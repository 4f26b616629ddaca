"""`when` routing: an output gets only the events its rule selects, the rest are filtered
(never produced for it), and for each output delivered + failed + filtered == produced, in
the summary, in /metrics, in what the sink holds, with --workers too."""

import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from connector.config import parse_config
from connector.metrics import registry_for
from connector.outputs.base import When, parse_event
from connector.outputs.handle import build_output
from connector.pipeline import Pipeline, RunOptions, prepare
from tests.harness.cli import run_cli

# One produce() call returns one of each: events of every kind a rule may meet. `n` is the
# call number, so each event is known by (n, position).
SCRIPT = r'''
n = 0
def produce(params):
    global n
    n += 1
    return [
        '{"signal": "log", "n": %d, "i": 0}' % n,
        '{"signal": "span", "n": %d, "i": 1}' % n,
        '{"n": %d, "i": 2, "meta": {"kind": "x"}, "signal": "LOG"}' % n,
        'plain text %d, no JSON' % n,
        '["signal", "log", %d]' % n,
        '{"signal": true, "n": %d, "i": 5}' % n,
        '{"signal": 1, "n": %d, "i": 6, "big": %s}' % (n, "9" * 40),
        '{"signal.name": "dotted", "signal": {"name": "nested"}, "n": %d, "i": 7}' % n,
        '{"signal": "log", "n": %d, "i": 8, "odd": "\\udcff \\u0000 \u00e9"}' % n,
        '{"signal": null, "n": %d, "i": 9}' % n,
    ]
'''
PER_CALL = 10
RULES = {  # output -> (when, positions of the events it gets in each call)
    "logs": ({"field": "signal", "equals": "log"}, [0, 8]),
    "spans": ({"field": "signal", "equals": "span"}, [1]),
    "kind": ({"field": "meta.kind", "equals": "x"}, [2]),
    "true": ({"field": "signal", "equals": True}, [5]),
    "one": ({"field": "signal", "equals": 1}, [6]),
    "dotted": ({"field": "signal.name", "equals": "dotted"}, [7]),
    "null": ({"field": "signal", "equals": None}, [9]),
    "logs-again": ({"field": "signal", "equals": "log"}, [0, 8]),
    "all": (None, list(range(PER_CALL))),
}


def _config(folder: Path, calls: int) -> Path:
    (folder / "s.py").write_text(SCRIPT)
    outputs = []
    for name, (when, _) in RULES.items():
        file = {"name": name, "file": {"path": f"{name}.txt"}}
        if when is not None:
            file["file"]["when"] = when
        outputs.append(file)
    config = {
        "mode": "backfill",
        "input": [{"rate": {"per_second": calls, "start": "2026-01-01T00:00:00Z",
                            "end": "2026-01-01T00:00:01Z"}}],
        "event": {"script": {"path": "s.py"}},
        "output": outputs,
    }
    path = folder / "c.yaml"
    path.write_text(json.dumps(config))
    return path


def _key(line: str) -> tuple[int, int] | str:
    """(n, position) of a written event (the non-JSON ones by their text)."""
    doc = parse_event(line)
    if isinstance(doc, dict):
        return doc["n"], doc["i"]
    return line


def _expected(calls: int, positions: list[int], workers: int = 1) -> Counter:
    """Each worker counts its own calls (module state is per worker): n = 1..calls/workers."""
    events = Counter()
    for n in range(1, calls // workers + 1):
        for i in positions:
            events[(n, i)] += workers
    return events


def _check_sinks(folder: Path, calls: int, workers: int = 1) -> None:
    for name, (_, positions) in RULES.items():
        lines = (folder / f"{name}.txt").read_text().split("\n")[:-1]
        keys = Counter(_key(line) for line in lines)
        if name == "all":
            assert len(lines) == calls * PER_CALL
            continue
        assert keys == _expected(calls, positions, workers), name
        if name == "logs":  # the field stays in the event, and the event is untouched
            assert all(json.loads(line)["signal"] == "log" for line in lines)


@pytest.mark.parametrize("workers", [1, 2])
def test_each_output_gets_exactly_what_its_rule_selects(tmp_path, workers):
    calls = 150
    result = run_cli("run", _config(tmp_path, calls), "--workers", workers, "--quiet",
                     "--metrics-port", "0")
    assert result.code == 0, result.stderr  # filtered events are no failure
    assert "Traceback" not in result.stderr
    produced = result.summary()["produced"]
    assert produced == calls * PER_CALL
    for name, (when, positions) in RULES.items():
        s = result.summary(name)
        assert (s["delivered"], s["failed"]) == (calls * len(positions), 0), name
        assert s["delivered"] + s["failed"] + s.get("filtered", 0) == produced, name
        line = next(x for x in result.stderr.splitlines() if x.startswith(f"  output {name}:"))
        if when is None:
            assert "filtered" not in line and "filtered" not in s, line
        else:
            assert line.endswith(f", filtered {s['filtered']}"), line
    _check_sinks(tmp_path, calls, workers)


def test_metrics_agree_and_a_broken_rule_output_fails_only_what_it_selected(tmp_path):
    calls = 120
    config = parse_config(json.loads(_config(tmp_path, calls).read_text()), tmp_path)
    outputs = [build_output(e, n) for e, n in zip(config.output, config.output_names(),
                                                  strict=True)]
    pipeline = Pipeline(config, prepare(config, None), outputs,
                        RunOptions(mode="backfill", batch_size=64))
    assert pipeline.run(datetime(2026, 1, 1, tzinfo=UTC)) == 0
    stats = pipeline.snapshot()
    text = generate_latest(registry_for(lambda: stats, "t")).decode()
    for name, (when, positions) in RULES.items():
        filtered = float(re.search(
            rf'^connector_events_filtered_total{{output="{name}"}} (\S+)$', text, re.M)[1])
        delivered = float(re.search(
            rf'^connector_events_delivered_total{{output="{name}"}} (\S+)$', text, re.M)[1])
        assert delivered == calls * len(positions), name
        assert delivered + filtered == stats.produced == calls * PER_CALL, name
        o = next(o for o in stats.outputs if o.name == name)
        assert o.routed == (when is not None) and o.pending == 0
    _check_sinks(tmp_path, calls)
    from connector.progress import Progress

    filtered = sum(o.filtered for o in stats.outputs)
    assert f"filtered {filtered:,}" in Progress(lambda: stats, None, 1.0).line(stats)


def test_an_output_that_cannot_write_fails_only_the_events_its_rule_selected(tmp_path):
    calls = 40
    path = _config(tmp_path, calls)
    config = json.loads(path.read_text())
    config["output"] = [
        {"name": "logs", "file": {"path": "/dev/full", "when": RULES["logs"][0],
                                  "dead_letter": "dead.jsonl"}},
        {"name": "all", "file": {"path": "all.txt"}},
    ]
    path.write_text(json.dumps(config))
    result = run_cli("run", path, "--quiet", "--metrics-port", "0")
    assert result.code == 1 and "Traceback" not in result.stderr, result.stderr
    s, everything = result.summary("logs"), result.summary("all")
    assert (s["delivered"], s["failed"], s["filtered"]) == (0, calls * 2, calls * 8)
    assert (everything["delivered"], everything.get("filtered", 0)) == (calls * PER_CALL, 0)
    dead = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert Counter(_key(d["value"]) for d in dead) == _expected(calls, [0, 8])
    assert all("No space left on device" in d["error"] for d in dead), dead[0]


@pytest.mark.parametrize("when, error", [
    ({"field": "", "equals": "x"}, "field"),
    ({"field": "a..b", "equals": "x"}, "empty part"),
    ({"field": "signal"}, "equals"),
    ({"field": "signal", "equals": [1]}, "equals"),
    ({"field": "signal", "equals": {"a": 1}}, "equals"),
    ({"field": "signal", "equals": "x", "is": "y"}, "is"),
    ({"field": 3, "equals": "x"}, "field"),
    ("signal == log", "when"),
])
def test_a_bad_rule_is_a_config_error_naming_the_key(tmp_path, when, error):
    (tmp_path / "s.py").write_text("def produce(p):\n    return '{}'\n")
    config = {
        "input": [{"cron": {"expression": "* * * * *"}}],
        "event": {"script": {"path": "s.py"}},
        "output": [{"null": {"when": when}}],
    }
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(config))
    result = run_cli("validate", path)
    assert result.code == 2, result.stderr
    assert "output[0].null.when" in result.stderr and error in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("event, matched", [
    ('{"signal": "log"}', True),
    ('{"signal": "Log"}', False),  # exact, case and all
    ('{"signal": ["log"]}', False),
    ('{"signal": {"log": 1}}', False),
    ('{"other": "log"}', False),
    ('"log"', False),
    ("log", False),
    ("", False),
    ("{" * 5000 + "}" * 5000, False),  # deeper than any parser takes
    ('{"signal": "log", "x": ' + "[" * 500 + "]" * 500 + "}", True),
    ('{"signal": "log", "big": ' + "7" * 5000 + "}", False),  # past Python's int limit
    ('{"signal": "log", "dup": 1, "signal": "span"}', False),  # the last duplicate wins
    ('{"signal": "log"} trailing', False),
    ('\ufeff{"signal": "log"}', False),
    ('{"signal": "lo\\u0067"}', True),
])
def test_a_rule_meets_hostile_events_without_raising(event, matched):
    match = When(field="signal", equals="log").matcher()
    assert match(parse_event(event)) is matched


def test_the_trace_check_reads_only_what_the_traces_output_selects():
    """examples/correlated routes its log lines away from the traces output: they carry
    trace and span ids but are no spans, and the check must not count them as such."""
    from tests.harness.cli import EXAMPLES

    result = run_cli("preview", EXAMPLES / "correlated" / "config.yaml", "--events", "300",
                     "--check-traces", "--seed", "2")
    assert result.code == 0, result.stderr
    checked = re.search(r"traces: (\d+) checked, 0 broken", result.stdout + result.stderr)
    assert checked and int(checked[1]) >= 20, result.stdout[-2000:] + result.stderr
