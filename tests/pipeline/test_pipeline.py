"""The pipeline's own logic in process: hand-off exactly once, a broken output stays local,
a script's BaseException, and RunStats arithmetic. Outputs here are real (file, null) except
where an output must raise from write_batch, which no real output does on purpose
(connector.testing's doubles)."""

import json
import pickle
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from connector.config import parse_config
from connector.outputs import Acks
from connector.outputs.base import NOT_SENT, Batch, OutputConfig
from connector.outputs.fanout import starts_of as _starts_of
from connector.outputs.handle import OutputHandle, build_output
from connector.pipeline import Pipeline, RunOptions, prepare
from connector.stats import LAG_BUCKETS, Histogram, OutputStats, RunStats
from connector.testing import FakeClock, ListSink, RaisingSink, StoppingSink

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _config(tmp_path: Path, script: str, per_second: int = 100, seconds: int = 10, **top):
    (tmp_path / "s.py").write_text(script)
    raw = {
        "mode": "backfill",
        "input": [{"rate": {"per_second": per_second, "start": "2026-01-01T00:00:00Z",
                            "end": f"2026-01-01T00:00:{seconds:02d}Z"}}],
        "event": {"script": {"path": "s.py"}},
        "output": [{"file": {"path": "out.txt"}}],
        **top,
    }
    return parse_config(raw, tmp_path)


def _pipeline(config, *outputs, **options) -> Pipeline:
    handles = [o if isinstance(o, OutputHandle) else OutputHandle(o) for o in outputs]
    return Pipeline(config, prepare(config, None), handles,
                    RunOptions(mode="backfill", batch_size=100, **options))


def test_an_output_that_raises_breaks_alone_and_no_batch_is_handed_twice(tmp_path):
    config = _config(tmp_path, "n = 0\ndef produce(p):\n    global n\n    n += 1\n    return str(n)\n")
    bad = RaisingSink(name="bad", exc=RuntimeError("boom"), on_batch=2, accept=30)
    good = build_output(config.output[0], "file-0")
    p = _pipeline(config, bad, good)
    code = p.run(NOW)
    s = p.snapshot()
    assert code == s.exit_code() == 1
    assert s.produced == 1000 and s.stop_reason is None  # the run went on
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert lines == [str(n) for n in range(1, 1001)]  # every event once, in order
    assert len(bad.batches) == 2  # after it raised, it was never called again
    by_name = {o.name: o for o in s.outputs}
    assert by_name["bad"].broken == "RuntimeError: boom"
    assert by_name["bad"].delivered == 100 + 30
    assert by_name["bad"].reasons == {"not sent: stopping": 70, "output broken": 800}
    for o in s.outputs:
        assert o.handed == o.delivered + o.failed == 1000
    assert by_name["file-0"].delivered == 1000


def test_every_output_broken_stops_the_run(tmp_path):
    config = _config(tmp_path, "def produce(p):\n    return 'x'\n")
    bad = RaisingSink(name="bad", exc=ValueError("nope"), on_batch=1)
    p = _pipeline(config, bad)
    assert p.run(NOW) == 1
    s = p.snapshot()
    assert s.stop_reason == "every output is broken" and s.produced == 100
    assert s.outputs[0].delivered + s.outputs[0].failed == 100


def test_a_second_signal_inside_write_batch_hands_nothing_twice(tmp_path):
    config = _config(tmp_path, "def produce(p):\n    return 'x'\n")
    first = RaisingSink(name="first", exc=KeyboardInterrupt(), on_batch=3, accept=10)
    later = build_output(config.output[0], "file-0")
    p = _pipeline(config, first, later)
    assert p.run(NOW) == 1
    s = p.snapshot()
    assert s.interrupted and "interrupted" in s.stop_reason
    assert len(first.batches) == 3 and s.produced == 300
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert len(lines) == 200  # the third batch never reached it, and it was not handed again
    for o in s.outputs:
        assert o.delivered + o.failed == o.handed == 300
    assert s.outputs[1].reasons == {"not sent: stopping": 100}
    assert s.outputs[0].reasons == {"not sent: stopping": 90}


class SignalAtEntry(ListSink):
    """A sink that a second signal reaches at write_batch's entry, on batch `on_batch`:
    KeyboardInterrupt before its first instruction, nothing of the batch taken."""

    def __init__(self, config, on_batch: int):
        super().__init__(config, "entry")
        self.on_batch, self.calls = on_batch, 0

    def write_batch(self, batch: Batch) -> None:
        self.calls += 1
        if self.calls == self.on_batch:
            raise KeyboardInterrupt
        super().write_batch(batch)


def _dead_values(path: Path) -> list[tuple[str, str]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["value"], r["error"]) for r in records]


def test_a_second_signal_at_write_batchs_entry_dead_letters_the_values(tmp_path):
    config = _config(tmp_path, "n = 0\ndef produce(p):\n    global n\n    n += 1\n    return str(n)\n")
    entry = SignalAtEntry(OutputConfig(dead_letter=tmp_path / "dead.jsonl"), on_batch=3)
    later = build_output(config.output[0], "file-0")
    p = _pipeline(config, entry, later)
    assert p.run(NOW) == 1
    s = p.snapshot()
    assert s.interrupted and s.produced == 300
    for o in s.outputs:
        assert o.handed == o.delivered + o.failed == 300 and o.reasons == {NOT_SENT: 100}, o
    assert _dead_values(tmp_path / "dead.jsonl") == [(str(n), NOT_SENT) for n in range(201, 301)]


def test_a_second_signal_before_an_outputs_write_still_accounts_its_batch(tmp_path):
    """The signal comes as the fan-out calls an output's write(), before it counts anything:
    that output never saw the batch, and fails it as not sent, with its values."""
    config = _config(tmp_path, "n = 0\ndef produce(p):\n    global n\n    n += 1\n    return str(n)\n")
    first = ListSink(OutputConfig(dead_letter=tmp_path / "first.jsonl"), "first")
    second = ListSink(OutputConfig(dead_letter=tmp_path / "second.jsonl"), "second")
    p = _pipeline(config, first, second)
    write, view = p._fan._plan[1]
    calls = []

    def signalled(batch, total):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return write(batch, total)

    p._fan._plan[1] = (signalled, view)
    assert p.run(NOW) == 1
    s = p.snapshot()
    assert s.interrupted and s.produced == 300
    by_name = {o.name: o for o in s.outputs}
    assert by_name["first"].delivered == 300 and not by_name["first"].failed
    assert by_name["second"].handed == 300 and by_name["second"].reasons == {NOT_SENT: 100}
    assert _dead_values(tmp_path / "second.jsonl") == [(str(n), NOT_SENT) for n in range(201, 301)]


def test_system_exit_and_other_base_exceptions_are_script_errors(tmp_path):
    script = (
        "import sys\nclass Custom(BaseException):\n    pass\nn = 0\n"
        "def produce(p):\n    global n\n    n += 1\n"
        "    if n == 3:\n        sys.exit(4)\n"
        "    if n == 5:\n        raise Custom('mine')\n"
        "    if n == 7:\n        raise GeneratorExit\n"
        "    return str(n)\n"
    )
    config = _config(tmp_path, script, per_second=1)
    p = _pipeline(config, build_output(config.output[0], "file-0"))
    assert p.run(NOW) == 1
    s = p.snapshot()
    assert s.script_errors == {"SystemExit": 1, "Custom": 1, "GeneratorExit": 1}
    assert s.produced == 7 and s.outputs[0].delivered == 7
    assert len((tmp_path / "out.txt").read_text().splitlines()) == 7


def _stats(calls, events, delivered, failed, reasons, lag, latency, **kw) -> RunStats:
    lag_h, lat_h = Histogram(LAG_BUCKETS), Histogram(Acks.LATENCY_BUCKETS)
    for v in lag:
        lag_h.observe(v)
    for v in latency:
        lat_h.observe(v)
    out = OutputStats("o", "file", lat_h, delivered + failed + kw.pop("pending", 0), delivered,
                      failed, Counter(reasons), started=True, ready=kw.pop("out_ready", True))
    return RunStats("live", ["in"], [2], lag_h, [out], calls=[calls], events=[events], **kw)


def test_run_stats_merge_adds_up():
    a = _stats(10, 7, 5, 2, {"x": 2}, [0.001, 0.3], [0.01], script_errors=Counter(KeyError=1),
               started=5.0, finished=9.0, stalled=3.0)
    b = _stats(5, 6, 6, 0, {}, [20.0], [0.02, 0.5], pending=1, out_ready=False,
               stop_reason="SIGTERM received", problems=["worker 1 died (exit code 3)"],
               started=4.0, finished=8.0, stalled=1.0, alive=False, starting=False)
    b = pickle.loads(pickle.dumps(b))  # what a worker sends
    m = a.merge(b)
    assert m.calls == [15] and m.events == [13] and m.produced == 13
    assert m.timestamps == [8]  # two calls a timestamp: ceil(15 / 2)
    assert m.script_errors == {"KeyError": 1}
    o = m.outputs[0]
    assert (o.handed, o.delivered, o.failed, o.pending) == (14, 11, 2, 1)
    assert o.reasons == {"x": 2} and o.started and not o.ready
    assert m.lag.count == 3 and abs(m.lag.sum - 20.301) < 1e-9
    assert m.lag.counts[-1] == 1  # 20 s is past the last bound
    assert o.latency.count == 3 and abs(o.latency.sum - 0.53) < 1e-9
    assert (m.started, m.finished, m.stalled) == (4.0, 9.0, 3.0)
    assert m.alive and m.starting  # a is still running and has not been anchored
    assert m.stop_reason == "SIGTERM received" and m.problems == ["worker 1 died (exit code 3)"]
    assert a.calls == [10] and a.outputs[0].delivered == 5  # the parts are untouched
    snap = m.snapshot()
    snap.outputs[0].reasons["y"] += 1
    assert "y" not in m.outputs[0].reasons


def test_exit_code_tells_the_truth():
    clean = _stats(1, 1, 1, 0, {}, [], [])
    assert clean.exit_code() == 0
    assert _stats(1, 1, 0, 1, {"x": 1}, [], []).exit_code() == 1
    assert _stats(2, 1, 1, 0, {}, [], [], script_errors=Counter(ValueError=1)).exit_code() == 1
    assert _stats(1, 1, 1, 0, {}, [], [], pending=1).exit_code() == 1
    assert _stats(1, 1, 1, 0, {}, [], [], problems=["worker 0 died"]).exit_code() == 1
    broken = _stats(1, 1, 1, 0, {}, [], [])
    broken.outputs[0].could_not_start = "cannot reach"
    assert broken.exit_code() == 1


def test_a_bug_in_an_output_at_shutdown_is_reported_and_the_accounts_still_settle(tmp_path):
    config = _config(tmp_path, "def produce(p):\n    return 'x'\n", seconds=1)

    class FailingClose(StoppingSink):  # accepts, never acknowledges, and close() raises
        def close(self):
            raise RuntimeError("close went wrong")

    bad = FailingClose(name="bad", clock=FakeClock())  # its flush waits on no real clock
    good = build_output(config.output[0], "file-0")
    p = _pipeline(config, bad, good)
    assert p.run(NOW) == 1
    s = p.snapshot()
    assert s.problems == ["output bad: close failed: RuntimeError: close went wrong"]
    assert len(s.bugs) == 1 and "RuntimeError: close went wrong" in s.bugs[0]
    assert s.outputs[0].failed == 100 and s.outputs[0].pending == 0  # settled
    assert s.outputs[1].delivered == 100 and not s.alive


def test_event_times_follow_the_calls_marks():
    from datetime import UTC, datetime, timedelta

    from connector.outputs.fanout import event_times as _event_times

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ms = (t0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    later = t0 + timedelta(microseconds=2500)  # 2.5 ms: floored to the millisecond
    # call 1: two events; call 2 raised (no events); call 3: one event; call 4 was trimmed
    marks = [(0, t0), (2, t0 + timedelta(seconds=1)), (2, later), (3, t0 + timedelta(hours=1))]
    assert _event_times(marks, 3) == [ms, ms, ms + 2]
    assert _event_times([], 0) == []


def test_a_when_rule_keeps_the_call_starts_of_the_events_it_selects():
    # calls start at 0, 3, 5, 9 (of 10 events); a transactional output with a `when` rule
    # must get whole calls of its own events, indexed in what it is handed
    starts = [0, 3, 5, 9]
    assert _starts_of([1, 2, 4, 9], starts) == [0, 2, 3]
    assert _starts_of([0, 3, 4, 6, 7, 8], starts) == [0, 1, 3]
    assert _starts_of([], starts) == []
    assert _starts_of(list(range(10)), starts) == starts
    assert _starts_of([5], None) is None
