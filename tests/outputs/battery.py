"""Running a form of an output through the pipeline, and what holds after every run.

`run()` drives a backfill (or a live run) in-process through `Pipeline`; `check()` then
holds it to the invariants every output shares: the summary's accounts add up (delivered +
failed + filtered == produced), /metrics as connector/metrics.py renders the run's RunStats
equals the summary, each failure is dead-lettered exactly once with its event, and what
the service holds is what was delivered, by event id.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import generate_latest

from connector.config import parse_config
from connector.metrics import registry_for
from connector.outputs import Output
from connector.outputs.base import Batch
from connector.outputs.handle import OutputHandle, build_output
from connector.pipeline import Pipeline, RunOptions, prepare
from connector.stats import OutputStats, RunStats
from connector.summary import print_summary

# Helpers of the suite, in one block (their home may move: repoint them here).
from tests.harness.accounts import check_accounts, dead_letters
from tests.harness.metrics import Samples, metric, samples
from tests.harness.summary import Summary

# the battery's own
from tests.outputs.forms import GOOD_EVENT, Place, Target, good, id_of

START = datetime(2026, 1, 1, tzinfo=UTC)
OUT = "out"  # the output under test, by name

SCRIPT = """
PLAN = json.load(open({plan!r}))  # the events of each call; past its end, one good event
TRACE = {trace!r}
n = 0


def produce(params):
    global n
    n += 1
    if n <= len(PLAN):
        return PLAN[n - 1]
    return good(n, TRACE)
"""


@dataclass
class Ran:
    code: int
    stats: RunStats
    summary: Summary
    place: Place
    target: Target
    sent: Counter  # ids of the events the output under test was offered (after `when`)
    ended_at: float = 0.0  # monotonic

    def out(self, name: str = OUT) -> OutputStats:
        return next(o for o in self.stats.outputs if o.name == name)

    @property
    def dead(self) -> list[dict]:
        return dead_letters(dead_letter(self.place))


def dead_letter(place: Place, name: str = OUT) -> Path:
    return place.folder / f"{name}.dead.jsonl"


def calls(n: int, trace: str, first: int = 1, bad: dict[int, str] | None = None) -> list:
    """n calls of one good event each, ids first..first+n-1; `bad` replaces some (id: event)."""
    bad = bad or {}
    return [[bad.get(i) or good(i, trace)] for i in range(first, first + n)]


def config_of(place: Place, target: Target, plan: list[list[str]], per_second: int,
              mode: str = "backfill", flush_timeout: float = 10.0,
              when: dict | None = None) -> dict:
    """A config of one rate input (a backfill of one second: one tick per call of `plan`)
    and the output under test. A double is configured as `null` and built by the test."""
    plan_path, script = place.folder / "plan.json", place.folder / "s.py"
    plan_path.write_text(json.dumps(plan))
    script.write_text(GOOD_EVENT + SCRIPT.format(plan=str(plan_path), trace=place.trace))
    rate: dict = {"per_second": per_second}
    if mode == "backfill":
        rate |= {"start": START.isoformat(), "end": (START + timedelta(seconds=1)).isoformat()}
    common: dict = {"dead_letter": str(dead_letter(place)), "flush_timeout": flush_timeout}
    if when is not None:
        common["when"] = when
    plugin = "null" if target.double else target.plugin
    entry = {"name": OUT, plugin: common if target.double else {**target.settings, **common}}
    return {"mode": mode, "input": [{"rate": rate}], "event": {"script": {"path": str(script)}},
            "output": [entry]}


def build(target: Target, config) -> Output:
    entry = config.output[0]
    out = target.double(entry.settings, OUT) if target.double else build_output(entry, OUT).output
    target.adapt(out)
    return out


def hand(out: Output, events: list[str]) -> None:
    """What the pipeline does with a batch (the one place the battery calls write_batch)."""
    out.acks.handed += len(events)
    out.write_batch(Batch(events))


def run(place: Place, target: Target, plan: list[list[str]] | None = None, *,
        batch_size: int = 100, when: dict | None = None, flush_timeout: float = 10.0,
        beside: tuple[Output, ...] = (), live: int = 0,
        watch: Callable[[Pipeline], None] | None = None) -> Ran:
    """Run the output under test (and `beside`) through the pipeline, then check() it: a
    backfill of `plan`, or with `live` a live run at that rate (one good event a tick) for
    at most a minute. `watch(pipeline)` runs beside it in a thread (to stop it, say)."""
    plan = plan or []
    mode = "live" if live else "backfill"
    raw = config_of(place, target, plan, live or len(plan), mode, flush_timeout, when)
    config = parse_config(raw, place.folder)
    outputs = [OutputHandle(out) for out in (build(target, config), *beside)]

    def anchor() -> datetime:  # every output has started: now the endpoint may stall
        target.stall_now()
        return datetime.now(UTC)

    options = RunOptions(mode=mode, batch_size=batch_size, duration=60 if live else None)
    pipeline = Pipeline(config, prepare(config, None), outputs, options, anchor=anchor)
    if watch is not None:
        threading.Thread(target=watch, args=(pipeline,), daemon=True).start()
    code = pipeline.run(START)
    ended = time.monotonic()
    stats = pipeline.snapshot()
    ran = Ran(code, stats, summary_of(stats), place, target,
              offered(plan, stats.produced, when), ended)
    check(ran)
    return ran


def summary_of(stats: RunStats) -> Summary:
    """The summary `connector run` prints for the run's RunStats, read back."""
    text = io.StringIO()
    print_summary(stats, text)
    return Summary.parse(text.getvalue())


def metrics_of(stats: RunStats) -> Samples:
    """/metrics as connector/metrics.py renders the run's RunStats, read back."""
    return samples(generate_latest(registry_for(lambda: stats, "battery")).decode())


def offered(plan: list[list[str]], produced: int, when: dict | None = None) -> Counter:
    """The ids the output was offered: the plan's events, then (live) good(n) for call n."""
    events = [e for call in plan for e in call][:produced]
    ids = [id_of(e) for e in events]
    ids += range(len(plan) + 1, len(plan) + 1 + produced - len(events))
    if when is not None:
        wanted = f'"{when["field"]}": {json.dumps(when["equals"])}'
        ids = [id_of(e) for e in events if wanted in e]
    return Counter(ids)


# -- what holds after every run ----------------------------------------------------------------


def check(ran: Ran, name: str = OUT) -> None:
    s, m = ran.summary, metrics_of(ran.stats)
    dead = dead_letters(dead_letter(ran.place, name))
    check_accounts(s, name, dead=dead)
    # the metrics, as served, say what the summary says
    assert metric(m, "connector_events_produced_total") == s.produced
    label = (("output", name),)
    assert m[("connector_events_delivered_total", label)] == s.delivered(name)
    assert m[("connector_events_filtered_total", label)] == s.outputs[name].filtered
    assert m[("connector_output_pending_events", label)] == 0
    failed = {dict(ls)["reason"]: v for (n, ls), v in m.items()
              if n == "connector_events_failed_total" and dict(ls)["output"] == name}
    assert failed == dict(s.reasons(name)), s.text
    if name == OUT:
        check_read_back(ran.summary, ran.target, ran.sent, dead)


def check_read_back(s: Summary, target: Target, sent: Counter, dead: list[dict]) -> None:
    """Each failure dead-lettered exactly once, with its event; what the service holds is
    every offered event that did not fail, each once."""
    failed = Counter(id_of(r["value"]) for r in dead)
    assert None not in failed, dead[:3]
    assert all(n == 1 for n in failed.values()), failed.most_common(3)
    assert all(r["output"] == OUT for r in dead)
    assert failed <= sent, sorted(failed - sent)[:5]
    got = target.read(s.delivered(OUT))
    if got is None:  # null sends nothing: it delivers what it does not fail
        assert s.delivered(OUT) == sum((sent - failed).values())
        return
    delivered = sent - failed
    assert not delivered - got, f"delivered, not there: {sorted(delivered - got)[:5]}"
    maybe = Counter(id_of(r["value"]) for r in dead if r["error"].startswith(target.maybe_written))
    assert got - delivered <= maybe, f"there, not delivered: {sorted(got - delivered)[:5]}"
    if not target.maybe_written:
        assert sum(got.values()) == s.delivered(OUT)
