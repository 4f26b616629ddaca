"""Series read from samples: per-second rates and lag percentiles between samples (the
samples are cumulative, so each interval's numbers are exact differences)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from connector.stats import LAG_BUCKETS, Histogram
from connector.view.samples import Sample

__all__ = ["lag_percentiles", "rate", "times"]


def times(samples: Sequence[Sample]) -> list[float]:
    """The end of each interval (the first sample starts the first one)."""
    return [round(s.t, 3) for s in samples[1:]]


def rate(samples: Sequence[Sample], count: Callable[[Sample], int]) -> list[float]:
    """count() per second over each interval between two samples."""
    out = []
    for a, b in itertools.pairwise(samples):
        dt = b.t - a.t
        # counters only grow; a fleet replica that restarted reads as 0, not below
        out.append(round(max(count(b) - count(a), 0) / dt, 3) if dt > 0 else 0.0)
    return out


def lag_percentiles(
    samples: Sequence[Sample], quantiles: Sequence[float]
) -> dict[float, list[float | None]]:
    """Per quantile, the schedule lag (seconds, a bucket's upper bound) over each
    interval; None where the interval saw no lag observation. Past the last bucket reads
    as the last bound (the histogram knows no more)."""
    out: dict[float, list[float | None]] = {q: [] for q in quantiles}
    for a, b in itertools.pairwise(samples):
        h = Histogram(LAG_BUCKETS)
        h.counts = [y - x for x, y in zip(a.lag, b.lag, strict=True)]
        for q in quantiles:
            if not h.count:
                out[q].append(None)
                continue
            value = h.quantile(q)
            out[q].append(LAG_BUCKETS[-1] if value == float("inf") else value)
    return out
