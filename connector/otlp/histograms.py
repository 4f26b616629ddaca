"""Histogram metrics: observations aggregated per series over the export interval (one
export request), as explicit-bound or exponential histograms, with exemplars.

Each event of a histogram metric carries one observation; the encoder (metrics.py) turns
it into an Observation, and `Histograms.points` aggregates a request's observations per
series (resource, metric name, attributes) into one data point:
- delta: the observations of this request only, from the previous point of the series;
- cumulative: every observation so far, from the run's start. Observations are numbered as
  the events are encoded, so a request built twice (split when too large) never counts
  one twice.
count, sum, min and max are set; each bucket keeps its latest exemplar (the observation's
time, value, trace and span id), when the mapping names the fields holding the ids.

The data points are written with opentelemetry-proto's messages: there are few of them
(one per series and request), unlike spans.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import NamedTuple

from connector.otlp.mapping import DEFAULT_BOUNDS
from connector.otlp.wire import field as wire_field

__all__ = ["Histograms", "Observation", "exponential_index"]

MAX_SERIES = 100_000  # cumulative series kept: bounded memory


class Observation(NamedTuple):
    series: tuple  # (resource key, metric name, attributes' bytes)
    kvs: tuple[bytes, ...]  # the attributes, KeyValue messages
    value: float
    time: int  # Unix nanoseconds
    trace_id: bytes  # b"" when the event has none
    span_id: bytes
    seq: int  # the order the events were encoded in


def exponential_index(value: float, scale: int) -> int:
    """The bucket of |value| > 0 at `scale`: (base^index, base^(index+1)], base = 2^2^-scale.
    Exact at powers of two (frexp), where floating-point log2 is not to be trusted."""
    mantissa, exponent = math.frexp(abs(value))  # value = mantissa * 2^exponent, 0.5 <= m < 1
    if mantissa == 0.5:  # 2^k exactly: index ceil(k * 2^scale) - 1, in integers
        k = exponent - 1
        return (k << scale) - 1 if scale >= 0 else -((-k) >> -scale) - 1
    if scale <= 0:
        return (exponent - 1) >> -scale
    return math.ceil(math.log2(abs(value)) * (1 << scale)) - 1


@dataclass
class _Agg:
    count: int = 0
    sum: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    start: int = 0
    time: int = 0
    seq: int = -1  # the last observation counted (cumulative)
    buckets: dict = field(default_factory=dict)  # explicit: index; exponential: (sign, index)
    zero: int = 0
    scale: int = 0
    exemplars: dict = field(default_factory=dict)  # bucket -> Observation
    spans: dict = field(default_factory=dict)  # exponential: sign -> (lowest, highest index)

    def add(self, obs: Observation, bucket: object) -> None:
        self.count += 1
        self.sum += obs.value
        self.min = min(self.min, obs.value)
        self.max = max(self.max, obs.value)
        self.time = max(self.time, obs.time)
        if bucket is not None:
            self.buckets[bucket] = self.buckets.get(bucket, 0) + 1
        if obs.trace_id:
            held = self.exemplars.get(bucket)
            if held is None or obs.time >= held.time:  # the latest, by observation time
                self.exemplars[bucket] = obs


class Histograms:
    """The aggregation state of one encoder: cumulative series and delta series' last
    point times."""

    def __init__(self) -> None:
        self.cumulative: dict[tuple, _Agg] = {}
        self.last: dict[tuple, int] = {}  # delta series -> time of its previous point

    def points(self, spec, observations: list[Observation], run_start: int) -> list[bytes]:
        """One data point (bytes, attributes included) per series of `observations`."""
        by_series: dict[tuple, list[Observation]] = {}
        for obs in observations:
            by_series.setdefault(obs.series, []).append(obs)
        out = []
        for series, group in by_series.items():
            if spec.temporality == "cumulative":
                agg = self.cumulative.get(series)
                if agg is None:
                    if len(self.cumulative) >= MAX_SERIES:
                        del self.cumulative[next(iter(self.cumulative))]
                    agg = self.cumulative[series] = _Agg(start=run_start, scale=spec.scale)
                group = [o for o in group if o.seq > agg.seq]
            else:
                first = min(o.time for o in group)
                agg = _Agg(start=min(self.last.get(series, first), first), scale=spec.scale)
            for obs in group:
                self._add(spec, agg, obs)
                agg.seq = max(agg.seq, obs.seq)
            if spec.temporality == "delta":
                if len(self.last) >= MAX_SERIES:
                    del self.last[next(iter(self.last))]
                self.last[series] = agg.time
            out.append(_encode(spec, agg, by_series[series][0].kvs))
        return out

    @staticmethod
    def _add(spec, agg: _Agg, obs: Observation) -> None:
        if spec.type == "histogram":
            # a bucket holds the values up to and including its upper bound
            agg.add(obs, bisect_left(spec.bounds or DEFAULT_BOUNDS, obs.value))
            return
        if obs.value == 0:
            agg.add(obs, None)
            agg.zero += 1
            return
        sign = 1 if obs.value > 0 else -1
        index = exponential_index(obs.value, agg.scale)
        agg.add(obs, (sign, index))
        low, high = agg.spans.get(sign, (index, index))
        agg.spans[sign] = low, high = min(low, index), max(high, index)
        if high - low + 1 > spec.max_size:  # only then are the buckets looked at
            _fit(agg, spec.max_size)


def _fit(agg: _Agg, max_size: int) -> None:
    """Lower the scale until each sign's buckets span at most max_size indexes."""
    while True:
        agg.spans = {}
        for sign, index in agg.buckets:
            low, high = agg.spans.get(sign, (index, index))
            agg.spans[sign] = min(low, index), max(high, index)
        if all(high - low + 1 <= max_size for low, high in agg.spans.values()):
            return
        agg.scale -= 1
        merged: dict = {}
        for (sign, index), count in agg.buckets.items():
            key = (sign, index >> 1)
            merged[key] = merged.get(key, 0) + count
        agg.buckets = merged
        exemplars: dict = {}
        for bucket, obs in agg.exemplars.items():
            key = bucket if bucket is None else (bucket[0], bucket[1] >> 1)
            held = exemplars.get(key)
            if held is None or obs.time >= held.time:
                exemplars[key] = obs
        agg.exemplars = exemplars


def _exemplar(obs: Observation):
    from opentelemetry.proto.metrics.v1.metrics_pb2 import Exemplar

    return Exemplar(
        time_unix_nano=obs.time, as_double=obs.value, trace_id=obs.trace_id, span_id=obs.span_id
    )


def _encode(spec, agg: _Agg, kvs: tuple[bytes, ...]) -> bytes:
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

    common = dict(
        start_time_unix_nano=min(agg.start, agg.time),
        time_unix_nano=agg.time,
        count=agg.count,
        sum=agg.sum,
    )
    if agg.count:
        common |= {"min": agg.min, "max": agg.max}
    if spec.type == "histogram":
        bounds = list(spec.bounds or DEFAULT_BOUNDS)
        counts = [agg.buckets.get(i, 0) for i in range(len(bounds) + 1)]
        order = sorted(agg.exemplars, key=lambda b: -1 if b is None else b)
        point = pb.HistogramDataPoint(
            bucket_counts=counts,
            explicit_bounds=bounds,
            exemplars=[_exemplar(agg.exemplars[b]) for b in order],
            **common,
        )
        return point.SerializeToString() + b"".join(wire_field(b"\x4a", kv) for kv in kvs)
    point = pb.ExponentialHistogramDataPoint(scale=agg.scale, zero_count=agg.zero, **common)
    for sign, target in ((1, point.positive), (-1, point.negative)):
        found = {i: n for (s, i), n in agg.buckets.items() if s == sign}
        if found:
            low = min(found)
            target.offset = low
            target.bucket_counts.extend(found.get(i, 0) for i in range(low, max(found) + 1))
    order = sorted(agg.exemplars, key=lambda b: (0, 0) if b is None else b)
    point.exemplars.extend(_exemplar(agg.exemplars[b]) for b in order)
    return point.SerializeToString() + b"".join(wire_field(b"\x0a", kv) for kv in kvs)
