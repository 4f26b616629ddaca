"""A replica's /metrics read back into a RunStats, so `connector top` draws a fleet with
the very view a single run uses (and merges replicas with RunStats.merge)."""

from __future__ import annotations

import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from connector.outputs.base import Acks
from connector.stats import LAG_BUCKETS, Histogram, OutputStats, RunStats

__all__ = ["Scraped", "fetch", "parse", "to_stats"]

LIMIT = 8 << 20  # a /metrics page larger than this is not a connector's


@dataclass
class _Output:
    delivered: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    filtered: int = 0
    pending: int = 0
    latency: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    latency_sum: float = 0.0
    routed: bool = False
    transactions: Counter[str] | None = None


@dataclass
class Scraped:
    """What one /metrics page says, by name."""

    config_name: str = ""
    timestamps: dict[str, int] = field(default_factory=dict)  # per input
    events: dict[str, int] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    script_errors: Counter[str] = field(default_factory=Counter)
    outputs: dict[str, _Output] = field(default_factory=lambda: defaultdict(_Output))
    lag: dict[float, float] = field(default_factory=dict)
    lag_sum: float = 0.0
    behind: float | None = None  # served in live mode only


def fetch(url: str, timeout: float) -> str:
    """The page's text; OSError (URLError, timeouts) or ValueError when it cannot be had."""
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        body = reply.read(LIMIT + 1)
    if len(body) > LIMIT:
        raise ValueError(f"more than {LIMIT} bytes")
    return body.decode("utf-8", "replace")


def parse(text: str) -> Scraped:
    """The connector's metrics from a page; ValueError when it is not Prometheus text."""
    out = Scraped()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name, labels, value = s.name, s.labels, s.value
            output = labels.get("output")
            if name == "connector_info":
                out.config_name = labels.get("config_name", "")
            elif name == "connector_timestamps_total":
                out.timestamps[labels["input"]] = int(value)
            elif name == "connector_events_produced_total":
                out.events[labels["input"]] = int(value)
            elif name == "connector_input_target_rate":
                out.targets[labels["input"]] = value
            elif name == "connector_script_errors_total":
                out.script_errors[labels["error"]] += int(value)
            elif name == "connector_schedule_behind_seconds":
                out.behind = value
            elif name == "connector_schedule_lag_seconds_bucket":
                out.lag[float(labels["le"])] = value
            elif name == "connector_schedule_lag_seconds_sum":
                out.lag_sum = value
            elif output is None:
                continue
            elif name == "connector_events_delivered_total":
                out.outputs[output].delivered = int(value)
            elif name == "connector_events_failed_total":
                out.outputs[output].failed[labels["reason"]] += int(value)
            elif name == "connector_events_filtered_total":
                out.outputs[output].filtered = int(value)
                out.outputs[output].routed |= value > 0
            elif name == "connector_output_pending_events":
                out.outputs[output].pending = int(value)
            elif name == "connector_delivery_latency_seconds_bucket":
                out.outputs[output].latency[float(labels["le"])] = value
            elif name == "connector_delivery_latency_seconds_sum":
                out.outputs[output].latency_sum = value
            elif name == "connector_transactions_total":
                o = out.outputs[output]
                o.transactions = o.transactions or Counter()
                o.transactions[labels["outcome"]] += int(value)
    return out


def _histogram(bounds: tuple[float, ...], cumulative: dict[float, float], total: float):
    """Per-bucket counts from Prometheus' cumulative `le` buckets (bounds it lacks: 0)."""
    h, before = Histogram(bounds), 0.0
    for i, bound in enumerate((*bounds, float("inf"))):
        seen = cumulative.get(bound, before)
        h.counts[i] = max(int(seen - before), 0)
        before = seen
    h.sum = total
    return h


def to_stats(page: Scraped, inputs: list[str], outputs: list[str]) -> RunStats:
    """A RunStats over the fleet's `inputs` and `outputs` (names a replica lacks: zeros),
    so replicas merge."""
    stats = RunStats(
        mode="live" if page.behind is not None else "backfill",
        input_names=list(inputs),
        counts=[1] * len(inputs),  # /metrics counts timestamps, not calls
        lag=_histogram(LAG_BUCKETS, page.lag, page.lag_sum),
        outputs=[],
        calls=[page.timestamps.get(i, 0) for i in inputs],
        events=[page.events.get(i, 0) for i in inputs],
        script_errors=Counter(page.script_errors),
        target_rates=[page.targets.get(i) for i in inputs],
        behind=page.behind or 0.0,
    )
    stats.starting = False
    for name in outputs:
        o = page.outputs.get(name) or _Output()
        failed = sum(o.failed.values())
        stats.outputs.append(
            OutputStats(
                name,
                "",
                _histogram(Acks.LATENCY_BUCKETS, o.latency, o.latency_sum),
                handed=o.delivered + failed + o.pending,
                delivered=o.delivered,
                failed=failed,
                reasons=+o.failed,
                filtered=o.filtered,
                routed=o.routed,
                transactions=o.transactions,
            )
        )
    return stats
