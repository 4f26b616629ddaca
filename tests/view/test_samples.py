"""The sampler's memory is bounded and its downsampling loses no event; the series read
from samples are exact differences; the live view and report render any RunStats."""

from __future__ import annotations

import io
import os
from collections import Counter

import pytest
from rich.console import Console

from connector.logs import add_secret
from connector.stats import LAG_BUCKETS, Histogram, OutputStats, RunStats
from connector.view.facts import HIDDEN, redacted
from connector.view.report import totals
from connector.view.samples import Sample, Samples
from connector.view.screen import Position, screen, sparkline
from connector.view.series import lag_percentiles, rate


def stats(calls: int, delivered: int = 0, failed: int = 0, lag: float | None = None) -> RunStats:
    h = Histogram(LAG_BUCKETS)
    if lag is not None:
        h.observe_many(lag, max(calls, 1))
    out = OutputStats("out", "null", Histogram((0.001, 0.01)), handed=delivered + failed,
                      delivered=delivered, failed=failed,
                      reasons=Counter({"timeout": failed}) if failed else Counter())
    return RunStats(mode="live", input_names=["in"], counts=[1], lag=h, outputs=[out],
                    calls=[calls], events=[calls], target_rates=[100.0])


def test_memory_is_bounded_and_the_first_and_last_samples_stay():
    samples = Samples(capacity=100, recent=61)
    for n in range(100_000):
        samples.add(Sample.of(float(n), stats(n * 10, n * 10)))
    kept = samples.history()
    assert len(kept) <= 101  # the capacity, and the latest sample
    assert kept[0].t == 0.0 and kept[-1].t == 99_999.0
    assert [s.t for s in kept] == sorted(s.t for s in kept)
    assert len(samples.recent()) == 61
    # cumulative counters: the difference of any two kept samples is exact
    assert kept[-1].outputs[0].delivered - kept[0].outputs[0].delivered == 999_990


def test_a_capacity_below_two_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        Samples(capacity=1)


def test_rates_and_lag_percentiles_between_samples():
    a = Sample.of(0.0, stats(0))
    b = Sample.of(2.0, stats(200, lag=0.003))  # 200 calls in 2 s, all with 3 ms of lag
    c = Sample.of(2.0, stats(200, lag=0.003))  # no time between: no rate, no division
    assert rate([a, b, c], lambda s: s.timestamps[0]) == [100.0, 0.0]
    p = lag_percentiles([a, b, c], (0.5, 0.99))
    assert p[0.5] == [0.005, None] and p[0.99] == [0.005, None]  # bucket bounds; None: no data
    far = Sample.of(3.0, stats(200, lag=1e6))  # past the last bucket: the last bound
    assert lag_percentiles([a, far], (0.99,))[0.99] == [LAG_BUCKETS[-1]]


def test_sparkline_scales_to_its_maximum_and_takes_odd_values():
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([1, 2, 4, 8]) == "▂▃▅█"
    assert sparkline([]) == ""
    assert sparkline([-5, 0, 10]) == "▁▁█"  # a replica restarted: its counters went back
    assert len(sparkline(range(500))) == 60


def test_the_report_totals_are_the_summary_lines():
    s = stats(10, delivered=7, failed=3)
    rows = {k: n for k, _, n in totals(s)}
    assert rows == {"timestamps": 10, "produced": 10, "script_errors": 0,
                    "output:out:delivered": 7, "output:out:failed": 3,
                    "output:out:reason:timeout": 3}


def test_secrets_are_redacted_by_key_and_by_value():
    add_secret("s3cr3t-value")
    dump = {"output": [{"kafka": {"sasl": {"password": "pw", "username": "bob"},
                                  "headers": {"Authorization": "Bearer x"},
                                  "topic": "t-s3cr3t-value", "key": "{{id}}"}}],
            "otlp": {"api_key": 42, "enabled": True}}
    out = redacted(dump)
    kafka = out["output"][0]["kafka"]
    assert kafka["sasl"] == {"password": HIDDEN, "username": "bob"}
    assert kafka["headers"] == {"Authorization": HIDDEN}
    assert kafka["topic"] == f"t-{HIDDEN}" and kafka["key"] == "{{id}}"
    assert out["otlp"] == {"api_key": HIDDEN, "enabled": True}


@pytest.mark.parametrize("width", [40, 120])
def test_the_view_renders_at_any_width_and_with_odd_numbers(width):
    odd = stats(10**12, delivered=10**12, failed=5)
    odd.outputs[0].reasons = Counter({"x" * 300: 5, "\x1b[31mred\x00": 1, "[/bold] not markup": 2})
    odd.outputs[0].latency.observe(float("inf"))
    odd.behind, odd.stop_reason = 1e9, "SIGTERM received"
    text = io.StringIO()
    view = screen(odd, [Sample.of(0, odd), Sample.of(1, odd)], 5.0, Position(total=7), "c",
                  parts=[odd, odd], verify={"found": 3, "missing": 1})
    Console(file=text, width=width, force_terminal=False).print(view)
    shown = text.getvalue()
    assert "workers" in shown and "verify: found 3, missing 1" in shown
    assert "SIGTERM received" in shown.replace("\n", "") or width < 60
    assert os.linesep in shown
    assert "[/bold] not" in shown.replace("\n", "") or width < 60
