"""Fuzzing what `produce()` returns or raises, through `connector run` (backfill) into a
file, stdout and null output, each with a dead letter.

The drawn behaviour (one per produce() call, cycled) is pickled into a generated script.
Whatever it is, the run keeps the invariants of issue 11:
- exit 0 or 1 (the config is valid), and 0 exactly when no script error happened and every
  event was delivered;
- no traceback, and the summary is printed;
- the script errors are counted by class (`bad_return_type` for a wrong return value), and
  `events produced` is exactly what the valid calls returned;
- per output delivered + failed == produced; the file's and stdout's lines are exactly the
  delivered events, in order (one event per line: an event holding a line break, or one
  that cannot be UTF-8, fails alone), the dead letter holds exactly the failed ones, and
  every other event is delivered (a bad event never takes a good one with it);
- failures have a small set of reasons, never one per value.
"""

from __future__ import annotations

import pickle
import textwrap
from collections import Counter
from pathlib import Path

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from tests.harness.accounts import dead_values
from tests.harness.fuzz import (
    ROOT,
    SPANISH,
    Run,
    event_text,
    odd_text,
    run_forked,
    run_subprocess,
)
from tests.harness.hypothesis_profiles import budget

# -- behaviours -----------------------------------------------------------------------------
# A behaviour is plain data (picklable): what one produce() call does.
#   ("return", value)         return value (any picklable Python value)
#   ("many", n, text)         return [text] * n           (lists of up to 10^5 events)
#   ("huge", n, char)         return char * n             (5 MB strings)
#   ("gen", [texts])          return a generator of texts  (not a list: bad_return_type)
#   ("subclass", text)        return a str subclass        (a str: one event)
#   ("raise", kind, message)  raise an exception of `kind` (see RAISE below)
#   ("slow", seconds, inner)  sleep, then do `inner`

RAISE = ["ValueError", "Exception", "SystemExit", "SystemExit-code", "SystemExit-text",
         "GeneratorExit", "BaseException", "CustomBase", "CustomException", "BadStr",
         "StopIteration", "RecursionError", "MemoryError", "UnicodeError", "KeyError"]
# The class name a raised kind is counted under.
RAISED_AS = {"SystemExit-code": "SystemExit", "SystemExit-text": "SystemExit",
             "CustomBase": "Custom", "CustomException": "Oops", "BadStr": "BadStr"}

any_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), odd_text, event_text,
              st.binary(max_size=10)),
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)

# Mostly valid returns (str, list of str), so the outputs see plenty of events.
valid_return = st.one_of(event_text, st.lists(event_text, max_size=8))

behaviours = st.one_of(
    valid_return.map(lambda v: ("return", v)),
    valid_return.map(lambda v: ("return", v)),
    any_value.map(lambda v: ("return", v)),
    st.lists(st.one_of(event_text, any_value), max_size=5).map(lambda v: ("return", v)),
    st.tuples(st.just("many"), st.sampled_from([0, 1, 1000, 100_000]), event_text),
    st.tuples(st.just("huge"), st.sampled_from([5 * 2**20]), st.sampled_from(["a", "é", "\n"])),
    st.tuples(st.just("gen"), st.lists(event_text, max_size=3)),
    st.tuples(st.just("subclass"), event_text),
    st.tuples(st.just("raise"), st.sampled_from(RAISE), odd_text),
    st.tuples(st.just("slow"), st.sampled_from([0.05, 0.2]), valid_return.map(
        lambda v: ("return", v))),
)

SCRIPT = textwrap.dedent(
    """
    import builtins
    import pickle
    import time

    BEHAVIOURS = pickle.loads({blob!r})
    calls = 0


    class Custom(BaseException):
        pass


    class Oops(Exception):
        pass


    class BadStr(Exception):
        def __str__(self):
            raise RuntimeError("no message for you")


    class Text(str):
        pass


    def act(b):
        kind = b[0]
        if kind == "return":
            return b[1]
        if kind == "many":
            return [b[2]] * b[1]
        if kind == "huge":
            return b[2] * b[1]
        if kind == "gen":
            return (t for t in b[1])
        if kind == "subclass":
            return Text(b[1])
        if kind == "slow":
            time.sleep(b[1])
            return act(b[2])
        what, message = b[1], b[2]
        if what == "SystemExit":
            raise SystemExit()
        if what == "SystemExit-code":
            raise SystemExit(3)
        if what == "SystemExit-text":
            raise SystemExit(message)
        if what == "CustomBase":
            raise Custom(message)
        if what == "CustomException":
            raise Oops(message)
        if what == "BadStr":
            raise BadStr()
        if what == "RecursionError":
            return act(b)  # a real one
        raise getattr(builtins, what)(message)


    def produce(params):
        global calls
        b = BEHAVIOURS[calls % len(BEHAVIOURS)]
        calls += 1
        return act(b)
    """
)


def expected_call(b: tuple) -> tuple[list[str] | None, str | None]:
    """(the events of one call, or None; the script error it counts, or None)."""
    kind = b[0]
    if kind == "slow":
        return expected_call(b[2])
    if kind == "raise":
        return None, RAISED_AS.get(b[1], b[1])
    if kind == "gen":
        return None, "bad_return_type"
    if kind == "subclass":
        return [b[1]], None
    if kind == "many":
        return [b[2]] * b[1], None
    if kind == "huge":
        return [b[2] * b[1]], None
    value = b[1]
    if type(value) is str:
        return [value], None
    if type(value) is list and all(type(v) is str for v in value):
        return value, None
    return None, "bad_return_type"


def expected_run(bs: list[tuple], calls: int, stop: bool,
                 max_events: int | None = None) -> tuple[list[str], Counter]:
    events, errors = [], Counter()
    for i in range(calls):
        got, error = expected_call(bs[i % len(bs)])
        if error:
            errors[error] += 1
            if stop:
                break
            continue
        events += got
        if max_events is not None and len(events) >= max_events:
            return events[:max_events], errors  # --max-events: exactly that many
    return events, errors


def one_line(event: str, fmt: str) -> str | None:
    """The line a file or stdout output writes for an event, or None when it cannot: not
    one line (a line break), not UTF-8, or (json) not JSON."""
    if fmt == "json":
        try:
            event = orjson.dumps(orjson.loads(event)).decode()
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            return None
    if "\n" in event or "\r" in event:
        return None
    try:
        event.encode()
    except UnicodeEncodeError:
        return None
    return event


CONFIG = """\
mode: backfill
check_traces: {check_traces}
metrics: {{port: 0}}
input:
  - cron:
      expression: "* * * * * *"
      start: "2026-02-20T10:00:00+00:00"
      end: "2026-02-20T10:00:{calls:02d}+00:00"
event:
  script:
    path: produce.py
    on_error: {on_error}
output:
  - name: f
    file: {{path: out.txt, mode: overwrite, dead_letter: f-dead.jsonl,
            formatter: {{format: {fmt}}}}}
  - name: s
    stdout: {{dead_letter: s-dead.jsonl}}
  - name: n
    null: {{}}
"""


def write_run(folder: Path, bs: list[tuple], calls: int, on_error: str, fmt: str,
              check_traces: bool = False) -> Path:
    (folder / "produce.py").write_text(SCRIPT.format(blob=pickle.dumps(bs)))
    config = folder / "c.yaml"
    config.write_text(CONFIG.format(calls=calls, on_error=on_error, fmt=fmt,
                                    check_traces=str(check_traces).lower()))
    return config


def check_run(run: Run, folder: Path, bs: list[tuple], calls: int, on_error: str,
              fmt: str, workers: int = 1, max_events: int | None = None) -> None:
    """Every invariant of one run against what its behaviours say must happen. Under
    --workers each process has its own script state and the order across processes is
    free, so events are compared as multisets there."""
    err = run.err[-5000:]
    assert not run.killed, f"the run did not end: {err}"
    assert run.code in (0, 1), (run.code, err)
    assert not run.traceback, err
    s = run.summary()
    assert s.printed, f"no summary: {err}"
    events, errors = [], Counter()
    for w in range(workers):  # timestamps are dealt round-robin
        got, errs = expected_run(bs, len(range(w, calls, workers)), on_error == "stop",
                                 max_events)
        events += got
        errors += errs
    same = (lambda a, b: a == b) if workers == 1 else (lambda a, b: Counter(a) == Counter(b))
    if on_error == "skip" and max_events is None:
        assert s.timestamps == calls, err
    assert s.error_kinds == errors, (s.error_kinds, errors, err)
    assert s.script_errors == sum(errors.values()), err
    assert s.produced == len(events), (s.produced, len(events), err)
    for name in ("f", "s", "n"):
        o = s.outputs[name]
        assert o.delivered + o.failed + o.filtered == s.produced, (name, o, err)
    assert s.outputs["n"].failed == 0
    # the file and stdout hold exactly the events that can be one line, in order; the dead
    # letter exactly the others
    for name, fmt_, data in (("f", fmt, (folder / "out.txt").read_bytes()), ("s", "plain",
                                                                               run.out)):
        o = s.outputs[name]
        lines = [one_line(e, fmt_) for e in events]
        want = [line for line in lines if line is not None]
        assert data.count(b"\n") == o.delivered, (name, data.count(b"\n"), o, err)
        got = data.decode().split("\n")[:-1] if data else []
        assert same(got, want), (name, got[:5], want[:5])
        assert o.delivered == len(want), (name, o, len(want), err)
        dead = dead_values(folder / f"{name}-dead.jsonl")
        assert len(dead) == o.failed, (name, len(dead), o)
        assert same(dead, [e for e, line in zip(events, lines, strict=True) if line is None])
        assert len(o.reasons) <= 3, (name, o.reasons)  # bounded, not one per value
    failed = sum(o.failed for o in s.outputs.values())
    truthful = 0 if (not errors and failed == 0) else 1
    assert run.code == truthful, (run.code, errors, failed, err)


# -- the properties -------------------------------------------------------------------------

# Counterexamples found so far (behaviours, calls, on_error, format, check_traces, max_events):
# each stays an explicit example of the property below.
REGRESSIONS = [
    # one bad event killed the whole batch, and stdout lost 9 events from its accounts
    ([("return", ['{"a": 1}', '{"a": "\udcff"}', '{"a": 2}'])], 3, "skip", "plain", False, None),
    ([("raise", "SystemExit", "")], 2, "skip", "plain", False, None),  # skipped the summary
    ([("raise", "CustomBase", "x")], 2, "skip", "plain", False, None),  # a traceback
    ([("return", "a\nb"), ("return", ["c", "d\r", "e"])], 2, "skip", "plain", False, None),
    ([("return", ["", "\x00", "\x1b[2J", "\u2028"])], 1, "skip", "json", False, None),
    ([("many", 100_000, "x"), ("huge", 5 * 2**20, "é")], 2, "skip", "plain", False, None),
    ([("return", ("a",)), ("gen", ["a"]), ("subclass", "a"), ("return", b"a")], 4, "skip",
     "plain", False, None),
    ([("raise", "BadStr", ""), ("return", "ok")], 2, "stop", "plain", False, None),
    ([("return", "ok"), ("raise", "RecursionError", "")], 2, "skip", "plain", False, None),
    # check_traces: a span with duration_ms 1e303 or an unhashable span_id ended the run
    # in a traceback at shutdown, without a summary
    ([("return", SPANISH)], 1, "skip", "plain", True, None),
    ([("many", 3, "x"), ("raise", "ValueError", "")], 3, "skip", "plain", False, 4),
]


def regressions(test):
    for args in reversed(REGRESSIONS):
        test = example(*args)(test)
    return test


@budget(80)
@given(
    st.lists(behaviours, min_size=1, max_size=4),
    st.integers(1, 4),
    st.sampled_from(["skip", "skip", "stop"]),
    st.sampled_from(["plain", "json"]),
    st.booleans(),
    st.sampled_from([None, None, None, 1, 5, 1000]),
)
@regressions
def test_produce_returns_or_raises_anything(tmp_path_factory, bs, calls, on_error, fmt,
                                            check_traces, max_events):
    if on_error == "stop":
        max_events = None  # which of the two ends a run first is not the point here
    folder = tmp_path_factory.mktemp("run")
    config = write_run(folder, bs, calls, on_error, fmt, check_traces)
    limit = ["--max-events", str(max_events)] if max_events else []
    run = run_forked(["run", str(config), "--quiet", *limit], cwd=folder, timeout=120)
    check_run(run, folder, bs, calls, on_error, fmt, max_events=max_events)


@budget(3)
@given(st.lists(behaviours, min_size=1, max_size=3), st.integers(1, 3))
@example([("return", ['{"a": 1}', '{"a": "\udcff"}', '{"a": 2}']), ("raise", "SystemExit",
                                                                     "")], 3)
def test_produce_through_the_real_entry_point(tmp_path_factory, bs, calls):
    # the same property through `python -m connector`, for what a fork cannot show
    folder = tmp_path_factory.mktemp("run")
    config = write_run(folder, bs, calls, "skip", "plain")
    run = run_subprocess(["run", str(config), "--quiet"], cwd=folder, timeout=120)
    check_run(run, folder, bs, calls, "skip", "plain")


@budget(3)
@given(st.lists(behaviours, min_size=1, max_size=3), st.integers(2, 5))
@example([("return", ["a", "b\nc", "\udcff"]), ("raise", "SystemExit", "")], 4)
def test_produce_under_workers(tmp_path_factory, bs, calls):
    folder = tmp_path_factory.mktemp("run")
    config = write_run(folder, bs, calls, "skip", "plain")
    run = run_subprocess(["run", str(config), "--quiet", "--workers", "2"], cwd=folder,
                         timeout=120)
    check_run(run, folder, bs, calls, "skip", "plain", workers=2)


def test_the_script_error_names_the_script_line(tmp_path):
    # SystemExit from produce() is a script error whose message shows the script's frame
    bs = [("raise", "SystemExit-code", "")]
    config = write_run(tmp_path, bs, 2, "skip", "plain")
    run = run_forked(["run", str(config), "--quiet"], cwd=tmp_path, timeout=60)
    check_run(run, tmp_path, bs, 2, "skip", "plain")
    assert "produce() raised SystemExit" in run.err
    assert "produce.py:" in run.err, run.err


def test_the_fuzz_script_runs_as_drawn(tmp_path):
    # the generated script itself: every behaviour does what expected_call says
    bs = [("return", "a"), ("many", 3, "b"), ("gen", ["c"]), ("raise", "KeyError", "k"),
          ("slow", 0.01, ("return", ["d", "e"]))]
    config = write_run(tmp_path, bs, 5, "skip", "plain")
    run = run_subprocess(["run", str(config), "--quiet"], cwd=ROOT, timeout=60)
    check_run(run, tmp_path, bs, 5, "skip", "plain")
    assert run.out == b"a\nb\nb\nb\nd\ne\n"
    assert run.summary().error_kinds == Counter(bad_return_type=1, KeyError=1)


def test_a_returned_list_changed_by_a_later_call_is_sent_as_returned(tmp_path):
    # Script state is the script's: the list produce() returned may be changed by the next
    # call (script.py hands the list on without copying it). What is sent is each call's
    # events as they were when it returned.
    (tmp_path / "produce.py").write_text(textwrap.dedent("""
        events, n = [], 0

        def produce(params):
            global n
            n += 1
            events.append(f"e{n}")
            if n % 2 == 0:
                events.clear()
                events.append(f"x{n}")
            return events
    """))
    (tmp_path / "c.yaml").write_text(CONFIG.format(calls=5, on_error="skip", fmt="plain",
                                                   check_traces="false"))
    run = run_forked(["run", str(tmp_path / "c.yaml"), "--quiet"], cwd=tmp_path, timeout=60)
    assert run.code == 0 and not run.traceback, run.err
    want = ["e1", "x2", "x2", "e3", "x4", "x4", "e5"]
    assert (tmp_path / "out.txt").read_text().split("\n")[:-1] == want
    assert run.out.decode().split("\n")[:-1] == want
