"""Histogram metrics in-process: buckets, the exponential index, the scale going down to fit,
delta and cumulative aggregation per request, exemplars, and the values and settings that
are refused."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from pydantic import ValidationError

from connector.otlp.histograms import exponential_index
from connector.otlp.mapping import DEFAULT_BOUNDS, MappingError, MetricMapping
from connector.otlp.signals import codec
from tests.harness.hypothesis_profiles import budget

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def mapping(**spec) -> MetricMapping:
    return MetricMapping(metrics={"ms": {"type": "histogram", **spec}}, exemplars={})


def event(value, k: int = 0, **extra) -> dict:
    return {"timestamp": T0 + k, "service": "api", "ms": value,
            "trace_id": f"{k + 1:032x}", "span_id": f"{k + 1:016x}", **extra}


def points(c, docs: list[dict]) -> list:
    items = [c.encode(d, c.mapping) for d in docs]
    request = ExportMetricsServiceRequest.FromString(c.request(items))
    out = []
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                data = getattr(m, m.WhichOneof("data"))
                out += list(data.data_points)
    return out


def test_explicit_buckets_hold_values_up_to_their_bound():
    c = codec("metrics", mapping(bounds=[1, 10], temporality="delta"))
    (p,) = points(c, [event(v, k) for k, v in enumerate([-3, 1, 1.0001, 10, 11, 0])])
    assert list(p.explicit_bounds) == [1, 10]
    assert list(p.bucket_counts) == [3, 2, 1]  # (-inf, 1], (1, 10], (10, inf)
    assert (p.count, p.sum, p.min, p.max) == (6, pytest.approx(20.0001), -3, 11)
    (default,) = points(codec("metrics", mapping()), [event(3)])
    assert list(default.explicit_bounds) == list(DEFAULT_BOUNDS)


def test_series_are_split_by_attributes_and_resource():
    c = codec("metrics", mapping(temporality="delta"))
    found = points(c, [event(1, 0, route="/a"), event(2, 1, route="/b"), event(3, 2, route="/a"),
                       event(4, 3, route="/a", service="other")])
    assert sorted(p.count for p in found) == [1, 1, 2]


@pytest.mark.parametrize("scale", [-4, -1, 0, 1, 3, 8, 20])
def test_the_exponential_index_is_exact_at_powers_of_two(scale):
    for exponent in range(-20, 40):
        value = 2.0**exponent  # the upper bound of its bucket: base^(index+1)
        assert exponential_index(value, scale) == math.ceil(exponent * 2.0**scale) - 1


@budget(200)
@given(st.floats(1e-9, 1e12), st.integers(-4, 10))
def test_the_exponential_index_brackets_the_value(value, scale):
    index = exponential_index(value, scale)
    low, high = index / 2**scale, (index + 1) / 2**scale  # log2 of the bucket's bounds
    assert low - 1e-9 <= math.log2(value) <= high + 1e-9


def test_the_scale_goes_down_until_the_buckets_fit():
    c = codec("metrics", MetricMapping(metrics={"ms": {
        "type": "exponential_histogram", "scale": 10, "max_size": 4}}, exemplars={}))
    values = [0.001, 1, 7, 1000, 1e6, 0, -5]
    (p,) = points(c, [event(v, k) for k, v in enumerate(values)])
    assert len(p.positive.bucket_counts) <= 4 and p.scale < 10
    assert sum(p.positive.bucket_counts) == 5 and p.zero_count == 1
    assert sum(p.negative.bucket_counts) == 1
    for v in values[:5]:
        assert 0 <= exponential_index(v, p.scale) - p.positive.offset < 4
    assert (p.count, p.min, p.max) == (7, -5, 1e6)


def test_cumulative_points_carry_everything_so_far_and_never_count_twice():
    c = codec("metrics", mapping(bounds=[5]))
    first = [c.encode(event(v, k), c.mapping) for k, v in enumerate([1, 9])]
    second = [c.encode(event(v, k + 2), c.mapping) for k, v in enumerate([2, 3])]

    def point(items):
        request = ExportMetricsServiceRequest.FromString(c.request(items))
        return request.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0]

    a = point(first)
    assert (a.count, list(a.bucket_counts)) == (2, [1, 1])
    point(first)  # the same request built again (split when too large): nothing counted twice
    b = point(second)
    assert (b.count, list(b.bucket_counts), b.sum) == (4, [3, 1], 15)
    assert b.start_time_unix_nano == a.start_time_unix_nano == T0 * 10**9
    assert b.time_unix_nano == (T0 + 3) * 10**9


def test_delta_points_start_where_the_series_last_ended():
    c = codec("metrics", mapping(temporality="delta"))
    (a,) = points(c, [event(1, 0), event(2, 5)])
    (b,) = points(c, [event(3, 9)])
    assert (a.start_time_unix_nano, a.time_unix_nano) == (T0 * 10**9, (T0 + 5) * 10**9)
    assert (b.start_time_unix_nano, b.count) == ((T0 + 5) * 10**9, 1)


def test_each_bucket_keeps_its_latest_exemplar_at_the_observations_time():
    c = codec("metrics", mapping(bounds=[10], temporality="delta"))
    docs = [event(1, 3), event(2, 7), event(50, 1), event(4, 5)]
    (p,) = points(c, docs)
    found = {(e.as_double, e.time_unix_nano, e.trace_id.hex()) for e in p.exemplars}
    assert found == {(2.0, (T0 + 7) * 10**9, f"{8:032x}"), (50.0, (T0 + 1) * 10**9, f"{2:032x}")}
    plain = codec("metrics", MetricMapping(metrics={"ms": {"type": "histogram"}}))
    (q,) = points(plain, [event(1)])
    assert not q.exemplars  # without `exemplars`, the ids are attributes, as any field
    assert {kv.key for kv in q.attributes} == {"trace_id", "span_id"}


@pytest.mark.parametrize(("value", "reason"), [
    ("12", "field 'ms' must be a finite number"),
    (True, "field 'ms' must be a finite number"),
    (float("nan"), "field 'ms' must be a finite number"),
    (float("inf"), "field 'ms' must be a finite number"),
    ([1], "field 'ms' must be a finite number"),
])
def test_an_observation_that_is_no_number_fails_its_event(value, reason):
    c = codec("metrics", mapping())
    with pytest.raises(MappingError) as caught:
        c.encode(event(value), c.mapping)
    assert caught.value.reason == reason


def test_bad_exemplar_ids_fail_the_event_and_leave_no_state():
    c = codec("metrics", mapping(temporality="delta"))
    with pytest.raises(MappingError) as caught:
        c.encode(event(1, trace_id="xyz"), c.mapping)
    assert caught.value.reason == "field 'trace_id' must be 32 hex characters"
    (p,) = points(c, [event(2, 4)])
    assert p.count == 1 and p.start_time_unix_nano == (T0 + 4) * 10**9


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "histogram", "bounds": [5, 1]}, "bounds must be finite and strictly increasing"),
    ({"type": "histogram", "bounds": [1, 1]}, "bounds must be finite and strictly increasing"),
    ({"type": "histogram", "bounds": [1, "inf"]}, "bounds must be finite"),
    ({"type": "gauge", "bounds": [1]}, "bounds apply to type: histogram only"),
    ({"type": "histogram", "monotonic": True}, "monotonic applies to type: sum only"),
    ({"type": "exponential_histogram", "scale": 21}, "less than or equal to 20"),
    ({"type": "exponential_histogram", "max_size": 1}, "greater than or equal to 2"),
])
def test_bad_histogram_settings_are_refused(spec, message):
    with pytest.raises(ValidationError) as caught:
        MetricMapping(metrics={"ms": spec})
    assert message in str(caught.value)


@budget(100)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60), st.integers(1, 7),
       st.integers(-2, 8), st.integers(2, 12))
def test_any_split_into_requests_adds_up_to_the_same_histogram(values, every, scale, size):
    explicit = codec("metrics", mapping(bounds=[-10, 0, 1, 100], temporality="delta"))
    exp = codec("metrics", MetricMapping(metrics={"ms": {
        "type": "exponential_histogram", "scale": scale, "max_size": size}}, exemplars={}))
    docs = [event(v, k) for k, v in enumerate(values)]
    buckets, count, last = [0] * 5, 0, None
    for k in range(0, len(docs), every):
        (p,) = points(explicit, docs[k:k + every])
        buckets = [a + b for a, b in zip(buckets, p.bucket_counts, strict=True)]
        count += p.count
        (last,) = points(exp, docs[k:k + every])
    want = [sum(1 for v in values if v <= -10), sum(1 for v in values if -10 < v <= 0),
            sum(1 for v in values if 0 < v <= 1), sum(1 for v in values if 1 < v <= 100),
            sum(1 for v in values if v > 100)]
    assert (buckets, count) == (want, len(values))
    assert last.count == len(values) and last.sum == pytest.approx(math.fsum(values), abs=1e-3)
    assert (last.min, last.max) == (min(values), max(values))
    assert last.zero_count == values.count(0)
    for sign, side in ((1, last.positive), (-1, last.negative)):
        assert len(side.bucket_counts) <= size
        found = [v for v in values if v * sign > 0]
        assert sum(side.bucket_counts) == len(found)
        for v in found:
            assert 0 <= exponential_index(v, last.scale) - side.offset < len(side.bucket_counts)
        if found:  # each value in its bucket at the final scale
            indexes = [exponential_index(v, last.scale) - side.offset for v in found]
            counts = [indexes.count(i) for i in range(len(side.bucket_counts))]
            assert list(side.bucket_counts) == counts
    if last.scale < scale:  # the scale went no lower than it had to: one finer is too wide
        finer = [[exponential_index(v, last.scale + 1) for v in values if v * s > 0]
                 for s in (1, -1)]
        assert any(f and max(f) - min(f) + 1 > size for f in finer)
