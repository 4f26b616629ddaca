"""The output compliance battery: every registered output, in each of its forms, and the
public test doubles pass the same cases against the real service, read back by event id.

A new output is done when it passes the battery; adding it is one line in forms.FORMS.
Runs go through `Pipeline` in-process (battery.py); only the second signal starts the CLI,
which needs a real process. After every run battery.check() holds the accounts, the
metrics against the summary, the dead letters and the read-back; each case below adds
what it is about.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

import pytest
import yaml

from connector.config import parse_config
from connector.outputs import OUTPUTS
from connector.outputs.base import NOT_SENT, OutputConfig
from connector.outputs.handle import BROKEN
from connector.pipeline import Pipeline
from connector.testing import FailingSink, ListSink, RaisingSink

# Helpers of the suite, in one block (their home may move: repoint them here).
from tests.harness.accounts import check_accounts, dead_letters
from tests.harness.cli import Run, no_traceback, wait_for

# the battery's own
from tests.outputs.battery import (
    OUT,
    build,
    calls,
    check,
    check_read_back,
    config_of,
    dead_letter,
    hand,
    metrics_of,
    run,
)
from tests.outputs.forms import FORMS, Form, Place, Target, good, id_of

MARGIN = 8.0  # seconds past flush_timeout a stopping run may take (close, a loaded machine)


@pytest.fixture(params=FORMS, ids=[f.id for f in FORMS])
def form(request) -> Form:
    return request.param


# The tests that stall a form: one whose stalled form hurts a private service joins the
# xdist group `private`, as tests/harness/parts.py puts a test that names such a fixture
# (the battery asks for it only once the form is set up, which parts.py cannot see).
STALLED = [
    pytest.param(f, id=f.id, marks=[pytest.mark.xdist_group("private")] if f.private else [])
    for f in FORMS
]


@pytest.fixture
def place(tmp_path, request) -> Place:
    return Place(tmp_path, request)


def test_every_registered_output_has_a_form():
    assert set(OUTPUTS) <= {f.plugin for f in FORMS}


def test_one_batch(form, place):
    target = form.setup(place)
    ran = run(place, target, calls(10, place.trace))
    assert ran.code == 0 and ran.stats.produced == 10
    assert ran.out().delivered == 10 and ran.out().failed == 0
    for sink in target.built:  # a double says how it was handed the events: once, whole
        assert [len(b) for b in sink.batches] == [10]


def test_a_thousand_batches_in_a_row(form, place):
    target = form.setup(place)
    plan = [[good(2 * i + 1, place.trace), good(2 * i + 2, place.trace)] for i in range(1000)]
    ran = run(place, target, plan, batch_size=2)
    assert ran.code == 0 and ran.out().delivered == 2000
    for sink in target.built:
        assert len(sink.batches) == 1000


def test_an_empty_batch(form, place):
    """Handed straight to the output (the pipeline hands on no empty batch), an empty batch
    between two events changes nothing. Through the pipeline, calls that return no events
    make a clean run with nothing to deliver."""
    target = form.setup(place)
    out = build(target, parse_config(config_of(place, target, [], 1), place.folder))
    out.start()
    for events in ([good(1, place.trace)], [], [good(2, place.trace)]):
        hand(out, events)
    assert out.flush(10.0) == 0
    out.close()
    out.acks.settle()
    assert (out.acks.delivered, out.acks.failed, out.acks.pending) == (2, 0, 0)
    got = target.read(2)
    assert got is None or got == Counter([1, 2])

    empty = Place(place.folder / "empty", place.request)
    empty.folder.mkdir()
    ran = run(empty, form.setup(empty), [[]] * 50)
    assert ran.code == 0 and ran.stats.produced == 0 and ran.out().delivered == 0


# Events an output may meet; where no event can be bad, it delivers every one of them.
HOSTILE = [
    "not JSON ev-{n:06d}",
    "ev-{n:06d} first line\nsecond line",
    "ev-{n:06d} a lone surrogate \udcff",
    "ev-{n:06d} " + "x" * 1_100_000,
    '{{"id": "ev-{n:06d}", "nested": {{"deep": [1, 2, {{"x": null}}]}}}}',
]


def test_a_batch_with_one_bad_event_fails_it_alone(form, place):
    target = form.setup(place)
    if form.bad is None:  # nothing is bad to it: every hostile event is delivered
        ran = run(place, target, [[e.format(n=i + 1)] for i, e in enumerate(HOSTILE)])
        assert ran.code == 0 and ran.out().delivered == len(HOSTILE) and ran.out().failed == 0
        return
    ran = run(place, target, calls(20, place.trace, bad={7: form.bad(7, place.trace)}))
    assert ran.code == 1 and (ran.out().delivered, ran.out().failed) == (19, 1)
    [(reason, n)] = ran.out().reasons.items()
    assert reason.startswith(form.bad_reason) and n == 1
    [record] = ran.dead
    assert id_of(record["value"]) == 7 and record["error"].startswith(form.bad_reason)


@pytest.mark.wallclock
@pytest.mark.parametrize("form", STALLED)
def test_the_stop_deadline(form, place):
    """Stopped while its endpoint stalls (or, for the doubles, the sink holds every event),
    the run ends within flush_timeout of the stop, and what was never acknowledged has
    failed. An output that cannot stall acknowledges on write: nothing is left over."""
    target = (form.stalled or form.setup)(place)
    stopped: list[float] = []

    def stop(pipeline: Pipeline) -> None:
        give_up = time.monotonic() + 30  # never held up: stop anyway, and say so below
        while not (held := _held_up(pipeline.snapshot(), target)):
            if time.monotonic() > give_up:
                break
            time.sleep(0.05)
        stopped.append(time.monotonic())
        pipeline.request_stop("SIGTERM received" if held else "never held up")

    ran = run(place, target, live=200, flush_timeout=3.0, watch=stop)
    assert ran.stats.stop_reason == "SIGTERM received"
    assert ran.ended_at - stopped[0] <= 3.0 + MARGIN
    if form.stalled is None:
        assert ran.code == 0 and ran.out().delivered == ran.stats.produced
    else:
        assert ran.code == 1 and ran.out().failed > 0


def _held_up(stats, target) -> bool:
    """The moment to stop: a stalled output whose writes wait for room has held the run up
    (it is behind its schedule); any other has been handed some events."""
    return stats.behind > 0.5 if target.blocks else stats.produced >= 20


@pytest.mark.wallclock
@pytest.mark.parametrize("form", STALLED)
def test_a_second_signal(form, place):
    """The first signal stops the run; a second one, while it waits for a stalled endpoint,
    ends the wait: the run ends long before flush_timeout, every event accounted for."""
    if not form.cli:
        _second_signal_in_process(form, place)
        return
    target = (form.stalled or form.setup)(place)
    config = place.folder / "c.yaml"
    raw = config_of(place, target, [], 200, "live", flush_timeout=45.0)
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = Run(place.folder, config, "--duration", "120")
    try:
        produced = "connector_events_produced_total"
        wait_for("events", lambda: proc.check_alive() and proc.metric(produced) > 0, 60)
        target.stall_now()
        after = proc.metric(produced) + 20
        wait_for("the run held up by the stalled output" if target.blocks else "events",
                 lambda: proc.check_alive() and (
                     proc.metric("connector_schedule_behind_seconds") > 0.5 if target.blocks
                     else proc.metric(produced) >= after), 60)
        proc.signal(signal.SIGTERM)
        first = time.monotonic()
        time.sleep(0.5)  # two signals at once are one: this one comes after the first
        proc.signal(signal.SIGTERM)
        while form.stalled and time.monotonic() - first < 30 and not _exited(proc, 10):
            proc.signal(signal.SIGTERM)  # not seen (merged with the first?): again
        code = proc.wait(60)
    finally:
        proc.kill()
    s = proc.summary
    assert proc.ended - first < 45.0, "the second signal did not end the wait:\n" + s.text
    no_traceback(proc.stderr)
    if form.stalled is not None:
        assert "interrupted" in s.stop and code == 1, s.text
    else:  # nothing waits: the second signal may come after the summary, as it exits
        clean = 1 if "interrupted" in s.stop or s.failed(OUT) else 0
        assert code in (clean, -signal.SIGTERM) and s.stop, proc.stderr[-3000:]
    dead = dead_letters(dead_letter(place))
    check_accounts(s, OUT, dead=dead)
    check_read_back(s, target, Counter(range(1, s.produced + 1)), dead)


def _exited(proc: Run, seconds: float) -> bool:
    try:
        proc.proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def _second_signal_in_process(form: Form, place: Place) -> None:
    """A double is no plugin the CLI can load: the same two signals go to this process,
    served as cli.cmd_run serves them (the first stops the run, a later one interrupts)."""
    target = form.stalled(place)
    running: list[Pipeline] = []
    times: list[float] = []

    def on_signal(signum, frame) -> None:
        pipeline = running[0]
        if not pipeline.alive:
            return
        if pipeline.stopping:
            raise KeyboardInterrupt
        pipeline.request_stop(f"{signal.Signals(signum).name} received")

    def signals(pipeline: Pipeline) -> None:
        running.append(pipeline)
        while pipeline.produced < 20:
            time.sleep(0.01)
        times.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)
        while not target.built[0].flushing:  # the moment: the run waits for its flush
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        ran = run(place, target, live=200, flush_timeout=45.0, watch=signals)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ran.ended_at - times[0] < 45.0
    assert ran.stats.interrupted and ran.code == 1
    assert ran.stats.stop_reason == "SIGTERM received; flush interrupted"
    assert ran.out().failed == ran.stats.produced  # it held them all: failed at close


def test_a_write_that_raises(form, place):
    """Beside an output whose write raises, this one gets every event once; the raising
    one is broken alone, and every event it was handed is accounted for."""
    target = form.setup(place)
    raising = RaisingSink(
        OutputConfig(dead_letter=dead_letter(place, "raising")), "raising", on_batch=2, accept=3
    )
    ran = run(place, target, calls(500, place.trace), beside=(raising,))
    assert ran.code == 1 and ran.stats.stop_reason is None and ran.stats.produced == 500
    assert ran.out().delivered == 500 and ran.out().failed == 0
    broken = ran.out("raising")
    assert broken.broken == "RuntimeError: write_batch raised (RaisingSink)"
    assert broken.delivered == 103 and broken.reasons == {NOT_SENT: 97, BROKEN: 300}
    check(ran, "raising")
    dead = dead_letters(dead_letter(place, "raising"))
    assert sorted(id_of(r["value"]) for r in dead) == list(range(104, 501))


def test_dead_letters_exactly_once_each(form, place):
    target = form.setup(place)
    if form.bad is None:  # nothing can fail it here: no dead letter is written at all
        ran = run(place, target, [[e.format(n=i + 1)] for i, e in enumerate(HOSTILE)] * 3)
        assert ran.out().failed == 0 and not dead_letter(place).exists()
        return
    bad = {n: form.bad(n, place.trace) for n in (3, 150, 151, 299)}
    ran = run(place, target, calls(300, place.trace, bad=bad), batch_size=10)
    dead = ran.dead
    assert sorted(id_of(r["value"]) for r in dead) == sorted(bad)
    assert [r["value"] for r in sorted(dead, key=lambda r: id_of(r["value"]))] == [
        bad[n] for n in sorted(bad)
    ]  # the event itself, as it was produced
    assert all(r["error"].startswith(form.bad_reason) for r in dead)


WHEN = {"field": "keep", "equals": True}


def test_when_filtering(form, place):
    target = form.setup(place)
    plan = [[good(n, place.trace, keep=n % 3 == 0)] for n in range(1, 301)]
    ran = run(place, target, plan, when=WHEN, batch_size=50)
    out = ran.out()
    assert ran.code == 0 and (out.delivered, out.failed, out.filtered) == (100, 0, 200)
    assert ran.summary.outputs[OUT].line.endswith("filtered 200")
    for sink in target.built:
        assert all('"keep": true' in e for e in sink.events)


def test_metrics_emitted_equal_the_summary(form, place):
    """A run with every kind of count: delivered, filtered, failed (where an event can be
    bad). check() compares each metric with the summary; here, that they were emitted."""
    target = form.setup(place)
    plan = [[good(n, place.trace, keep=n % 2 == 0)] for n in range(1, 201)]
    if form.bad is not None:
        plan[9] = [form.bad(10, place.trace)]
    ran = run(place, target, plan, when=WHEN if form.bad is None else None, batch_size=25)
    m = metrics_of(ran.stats)
    label = (("output", OUT),)
    assert m[("connector_events_delivered_total", label)] == ran.out().delivered > 0
    assert m[("connector_delivery_latency_seconds_count", label)] == ran.out().delivered
    assert m[("connector_events_produced_total", (("input", "rate-0"),))] == 200
    if form.bad is not None:
        [reason] = ran.out().reasons
        assert reason.startswith(form.bad_reason)
        assert m[("connector_events_failed_total", (*label, ("reason", reason)))] == 1
    else:
        assert m[("connector_events_filtered_total", label)] == 100


def test_the_accounts_read_back(form, place):
    """Calls of several events, split across batches, some of them bad: delivered + failed
    + filtered == produced, and the service holds exactly what was delivered, by id."""
    target = form.setup(place)
    plan, n = [], 0
    for size in [3, 1, 4, 1, 5, 9, 2, 6] * 20:
        call = [good(n + k, place.trace, keep=(n + k) % 4 != 0) for k in range(1, size + 1)]
        if form.bad is not None and len(plan) % 37 == 5:
            call[-1] = form.bad(n + size, place.trace)
        plan.append(call)
        n += size
    ran = run(place, target, plan, batch_size=7, when=WHEN)
    out = ran.out()
    assert ran.stats.produced == n
    assert out.delivered + out.failed + out.filtered == n and out.delivered > 0


def test_a_failing_sink_fails_its_chosen_batches_whole(place):
    """FailingSink's other mode (the battery's failing-sink form chooses events)."""
    sink = FailingSink(OutputConfig(dead_letter=dead_letter(place, "failing")), "failing",
                       batches={2, 4}, reason="refused")
    ran = run(place, Target(ListSink.plugin, double=lambda config, name: ListSink(config, name)),
              calls(50, place.trace), batch_size=10, beside=(sink,))
    assert ran.out("failing").reasons == {"refused": 20}
    check(ran, "failing")
    failed = sorted(id_of(r["value"]) for r in dead_letters(dead_letter(place, "failing")))
    assert failed == [*range(11, 21), *range(31, 41)]
    assert [id_of(e) for e in sink.events] == [*range(1, 11), *range(21, 31), *range(41, 51)]
