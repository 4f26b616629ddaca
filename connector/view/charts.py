"""The report's charts, as plotly figures built from the samples and the final RunStats.

Each function returns (title, figure) or None when the run has nothing to draw there
(no failures, no transactions...): the report then says so in words."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from connector.outputs.base import Acks
from connector.stats import RunStats
from connector.view.samples import Sample
from connector.view.series import lag_percentiles, rate, times

__all__ = ["Chart", "charts"]

Chart = tuple[str, str, go.Figure]  # (id, title, figure)


def _figure(y_title: str, x_title: str = "seconds since the run began") -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        template="plotly_white",
        height=340,
        margin={"l": 60, "r": 20, "t": 30, "b": 50},
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def rates(samples: Sequence[Sample], stats: RunStats) -> Chart | None:
    if len(samples) < 2:
        return None
    fig, x = _figure("timestamps per second"), times(samples)
    for i, name in enumerate(stats.input_names):
        fig.add_scatter(x=x, y=rate(samples, lambda s, i=i: s.timestamps[i]), name=f"{name}")
        targets = [s.targets[i] for s in samples[1:]]
        if any(t is not None for t in targets):
            fig.add_scatter(
                x=x, y=targets, name=f"{name} target", line={"dash": "dash"}, mode="lines"
            )
    return "rates", "Target and achieved rate, per input", fig


def lag(samples: Sequence[Sample], stats: RunStats) -> Chart | None:
    if len(samples) < 2 or not stats.lag.count:
        return None
    fig, x = _figure("schedule lag (s, bucket bound)"), times(samples)
    for q, ys in lag_percentiles(samples, (0.5, 0.9, 0.99)).items():
        fig.add_scatter(x=x, y=ys, name=f"p{q * 100:g}", mode="lines+markers", connectgaps=False)
    return "lag", "Schedule lag percentiles over time", fig


def outcomes(samples: Sequence[Sample], stats: RunStats) -> Chart | None:
    if not samples:
        return None
    fig, x = _figure("events (cumulative)"), [round(s.t, 3) for s in samples]
    for j, o in enumerate(stats.outputs):
        points = [s.outputs[j] for s in samples]
        fig.add_scatter(x=x, y=[p.delivered for p in points], name=f"{o.name} delivered")
        fig.add_scatter(x=x, y=[p.failed for p in points], name=f"{o.name} failed")
        if o.routed:
            fig.add_scatter(x=x, y=[p.filtered for p in points], name=f"{o.name} filtered")
    return "outcomes", "Delivered, failed and filtered, per output", fig


def failures(samples: Sequence[Sample], stats: RunStats) -> Chart | None:
    rows = [(o.name, r, n) for o in stats.outputs for r, n in o.reasons.most_common()]
    if not rows:
        return None
    fig = _figure("", "events failed")
    for name in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == name]
        fig.add_bar(y=[r[1] for r in mine], x=[r[2] for r in mine], name=name, orientation="h")
    fig.update_layout(height=max(240, 60 + 30 * len(rows)), yaxis={"automargin": True})
    return "failures", "Failures by reason", fig


def latency(samples: Sequence[Sample], stats: RunStats) -> Chart | None:
    shown = [o for o in stats.outputs if o.latency.count]
    if not shown:
        return None
    labels = [f"<= {b:g} s" for b in Acks.LATENCY_BUCKETS] + [f"> {Acks.LATENCY_BUCKETS[-1]:g} s"]
    fig = _figure("events", "delivery latency")
    for o in shown:
        fig.add_bar(x=labels[: len(o.latency.counts)], y=o.latency.counts, name=o.name)
    return "latency", "Delivery latency distribution, per output", fig


def transactions(samples: Sequence[Sample], stats: RunStats) -> Chart | None:
    js = [j for j, o in enumerate(stats.outputs) if o.transactions is not None]
    if not js or not samples:
        return None
    fig, x = _figure("transactions (cumulative)"), [round(s.t, 3) for s in samples]
    for j in js:
        name = stats.outputs[j].name
        fig.add_scatter(x=x, y=[s.outputs[j].committed for s in samples], name=f"{name} committed")
        fig.add_scatter(x=x, y=[s.outputs[j].aborted for s in samples], name=f"{name} aborted")
    return "transactions", "Transactions committed and aborted", fig


def checkpoints(samples: Sequence[Sample], stats: RunStats) -> Chart | None:
    if not stats.checkpoints or not samples:
        return None
    fig, x = _figure("checkpoints (cumulative)"), [round(s.t, 3) for s in samples]
    fig.add_scatter(x=x, y=[s.checkpoints for s in samples], name="checkpoints settled")
    return "checkpoints", "Checkpoints", fig


# the report's order; each one's absence is said in words
ALL = (rates, lag, outcomes, failures, latency, transactions, checkpoints)
ABSENT = {
    "rates": "The run was too short for a rate (fewer than two samples).",
    "lag": "No schedule lag was measured (a backfill, or nothing was scheduled).",
    "outcomes": "No sample was taken.",
    "failures": "No event failed.",
    "latency": "No delivery latency was recorded.",
    "transactions": "No output uses transactions.",
    "checkpoints": "No --checkpoint.",
}


def charts(samples: Sequence[Sample], stats: RunStats) -> list[tuple[str, Chart | None]]:
    """(id, chart or None) for every chart of the report, in order."""
    return [(f.__name__, f(samples, stats)) for f in ALL]
