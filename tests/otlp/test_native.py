"""The native encoders (native/, built as connector/otlp/_native) against the pure-Python
`from_text` they stand in for: for any text, the same item bytes or the same failure.

The native encoder hands whatever it does not fully read to the pure-Python path, so a
refusal is always worded by Python; these properties hold it to never accepting anything
differently. Texts come as the otlp output gets them: the compiled tests' odd fields and
cut texts, plus non-ASCII text unescaped, odd whitespace and numbers and times written
every way JSON and ISO 8601 allow.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import connector.otlp.compiled as compiled
from connector.otlp.compiled import (
    item_request,
    log_encoder,
    metric_request,
    metric_texts,
    span_encoder,
)
from connector.otlp.mapping import MetricMapping, SpanMapping
from connector.otlp.metrics import MetricEncoder
from connector.otlp.signals import codec
from tests.harness.cli import ROOT
from tests.harness.hypothesis_profiles import budget
from tests.harness.otlp_events import (
    LOG_EXTRAS,
    LOG_MAPPING,
    LOG_VALUES,
    PARENT,
    SPAN,
    SPAN_EXTRAS,
    SPAN_MAPPINGS,
    SPAN_VALUES,
    TRACE,
    docs,
    example_events,
    outcome,
    renamed_text,
    texts,
)


@pytest.fixture(autouse=True)
def native_built():
    assert compiled.native_built(), (
        "the native encoder (connector/otlp/_native) is not built: scripts/test builds it "
        "with cargo; by hand: `source scripts/setup.sh && build_native`"
    )


def both(encoder, mapping):
    """(native from_text, pure-Python from_text) of one mapping."""
    return single(encoder(mapping).many), encoder(mapping, native=False).from_text


def single(many):
    """One event through `many`: its item, or its failure raised (as from_text)."""

    def from_text(event):
        items, failed = many([event])
        if failed:
            raise items[0]
        return items[0]

    return from_text


def metric_from_text(encoder: MetricEncoder, native: bool = True):
    """from_text of metrics: through the native encoder's `many`, or the Python path."""
    from_text, many = metric_texts(encoder, native)
    return single(many) if native else from_text


@st.composite
def written(draw, plain: dict, extras: dict):
    """An event's text as json.dumps writes it, or unescaped, spaced, or as texts() does."""
    if draw(st.booleans()):
        return draw(texts(plain, extras))
    doc = draw(docs(plain, extras))
    space = draw(st.sampled_from([(", ", ": "), (",", ":"), (" ,\n", " :\t")]))
    try:
        return json.dumps(doc, ensure_ascii=draw(st.booleans()), separators=space)
    except UnicodeEncodeError:
        return json.dumps(doc)


# start times written every way: the shape the native path reads and its near misses
TIMES = st.builds(
    "{}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format,
    st.sampled_from(["1969", "1970", "2026", "2024", "2241", "2242", "2300", "0001", "9999"]),
    st.integers(0, 13),
    st.integers(0, 32),
    st.sampled_from(["T", "T", "T", " ", "t"]),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 60),
    st.sampled_from(["", "", ".5", ".123", ".123456", ".1234567", ".", ",5", ".000001"]),
    st.sampled_from(["Z", "+00:00", "-00:00", "+05:30", "-23:59", "+24:00", "+0530", "+05",
                     "", "z", "+00:00:30", "-12:60"]),
)
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["0.0000025", "3.5e-6", "-0", "0.0", "1e3", "1E+3", "2.5e-1", "61.23", "1e400", "0.5", "1.5",
                     "2.5", "123456789012345678", "1234567890123456789", "01", "1.", "-"]),
)


def span_text(start: str, duration: str, parent: str | None = PARENT) -> str:
    parent_field = "" if parent is None else f'"parent_span_id": "{parent}", '
    return (f'{{"trace_id": "{TRACE}", "span_id": "{SPAN}", {parent_field}"service": "s", '
            f'"operation": "o", "start_time": "{start}", "duration_ms": {duration}, '
            '"status": "OK"}')


@budget(400)
@given(written(SPAN_VALUES, SPAN_EXTRAS), st.sampled_from(SPAN_MAPPINGS))
@example(span_text("2026-02-20T10:00:00.123456+00:00", "61.23"), SpanMapping())
def test_a_native_span_is_the_python_span(text, m):
    text = renamed_text(text, m)
    native, pure = both(span_encoder, m)
    assert outcome(native, text) == outcome(pure, text)


@budget(400)
@given(TIMES, NUMBERS)
@example("2026-02-20T10:00:00.5+00:00", "0.5")
@example("2241-12-31T23:59:59.999999Z", "1")
@example("2026-02-20T10:00:00Z", "0.0000025")  # 2.5 ns: halves round to even, as Python
def test_native_times_and_durations_are_pythons(start, duration):
    native, pure = both(span_encoder, SpanMapping())
    text = span_text(start, duration)
    assert outcome(native, text) == outcome(pure, text)


@budget(400)
@given(written(LOG_VALUES, LOG_EXTRAS))
@example('{"timestamp": "2026-02-20T10:00:00Z", "level": " warning ", "message": "x"}')
@example('{"timestamp": "2026-02-20T10:00:00Z", "level": "\u0131nfo", "message": "x"}')
def test_a_native_log_record_is_the_python_one(text):
    native, pure = both(log_encoder, LOG_MAPPING)
    assert outcome(native, text) == outcome(pure, text)


@budget(100)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_any_text_at_all(text):
    """Not even JSON: the same failure as Python's (the native path hands it on)."""
    for encoder, mapping in ((span_encoder, SpanMapping()), (log_encoder, LOG_MAPPING)):
        native, pure = both(encoder, mapping)
        assert outcome(native, text) == outcome(pure, text)


METRIC_VALUES = {
    "timestamp": ["2026-02-20T10:00:00+00:00", "2026-02-20T10:00:01.5", "2026-02-20T09:59:00Z",
                  1_771_581_600, 1.7e9, -1, 2**70, "", "bad", None, True,
                  "1969-12-31T23:59:59.5", "2026-02-20 10:00:00"],
    "service": ["svc", "b", "", None, 1, "\u00e9", ["s"]],
    "cpu": [1.5, 2, -0.0, 2**63 - 1, 2**63, 2**70, "5", True, None, 1e308, [1]],
    "mem": [512, 0, -5, None, 1.25, False],
    "requests": [7, 0, None, 2.5, "x"],
}
METRIC_EXTRAS = {
    "attributes": [{"k": 1}, None, 5],
    "resource": [{"zone": "a"}, None],
    "region": ["eu", 1, None],
    "lat": [3.5, 2, None, "x"],
}
NARROW_VALUES = {
    "timestamp": METRIC_VALUES["timestamp"],
    "service": METRIC_VALUES["service"],
    "metric": ["requests", "cpu", "lat", "", None, 5],
    "value": [1, 2.5, None, "x", 2**64],
}
WIDE = MetricMapping(metrics={
    "cpu": {"type": "gauge", "unit": "%"},
    "mem": {"type": "sum"},
    "requests": {"type": "sum", "temporality": "delta", "monotonic": True},
    "lat": {"type": "histogram", "temporality": "delta"},
})
NARROW = MetricMapping(name="metric", value="value", metrics={
    "requests": {"type": "sum", "temporality": "delta"},
    "lat": {"type": "exponential_histogram"},
})


@budget(300)
@given(st.data(), st.sampled_from([WIDE, NARROW]))
def test_native_metrics_are_pythons_with_one_state(data, m):
    """A run of events, some read natively and some by Python, through one encoder each:
    the same items or failures in order, and the same state after (start, delta series)."""
    plain = METRIC_VALUES if m is WIDE else NARROW_VALUES
    events = data.draw(st.lists(written(plain, METRIC_EXTRAS), min_size=1, max_size=12))
    native, pure = MetricEncoder(m), MetricEncoder(m)
    native_text, pure_text = metric_from_text(native), metric_from_text(pure, native=False)
    assert [outcome(native_text, e) for e in events] == [outcome(pure_text, e) for e in events]
    assert (native.start, native.last, native.seq) == (pure.start, pure.last, pure.seq)


@budget(200)
@given(st.data(), st.sampled_from([WIDE, NARROW]))
def test_a_native_metric_request_is_pythons(data, m):
    """The request of a batch of metric items (histograms' observations included: those
    batches take the Python request), twice in a row: the same bytes."""
    plain = METRIC_VALUES if m is WIDE else NARROW_VALUES
    native, pure = MetricEncoder(m), MetricEncoder(m)
    for _ in range(2):
        events = data.draw(st.lists(written(plain, METRIC_EXTRAS), max_size=12))
        batches = []
        for encoder in (native, pure):
            results = [outcome(metric_from_text(encoder), e) for e in events]
            batches.append([item for how, item, *_ in results if how == "item"])
        assert metric_request(native)(batches[0]) == metric_request(pure, native=False)(batches[1])


def test_delta_series_are_evicted_as_python_evicts_them(monkeypatch):
    """Past MAX_SERIES the least recently seen series goes, whichever path saw it."""
    import connector.otlp.metrics as metrics

    monkeypatch.setattr(compiled, "MAX_SERIES", 3)
    monkeypatch.setattr(metrics, "MAX_SERIES", 3)
    events = [json.dumps({"timestamp": f"2026-02-20T10:00:{k:02d}Z", "service": svc,
                          "requests": k, **extra})
              for k, (svc, extra) in enumerate([("a", {}), ("b", {}), ("c", {"region": "x"}),
                                                ("d", {}), ("a", {}), ("b", {}), ("e", {})])]
    native, pure = MetricEncoder(WIDE), MetricEncoder(WIDE)
    native_text, pure_text = metric_from_text(native), metric_from_text(pure, native=False)
    assert [native_text(e) for e in events] == [pure_text(e) for e in events]
    assert list(native.last.items()) == list(pure.last.items()) and len(pure.last) == 3


def many_outcomes(many, events: list) -> list:
    """What `many` gives, as outcome() words each event's item or failure."""
    items, failed = many(events)
    assert len(items) == len(events) and failed == sorted(set(failed))
    assert all(isinstance(items[i], Exception) == (i in failed) for i in range(len(events)))

    def give(i):
        if i in failed:
            raise items[i]
        return items[i]

    return [outcome(give, i) for i in range(len(events))]


ODD = st.sampled_from([None, b"{}", 5, "\ud800", ""])  # not text, or no UTF-8


@budget(200)
@given(st.lists(written(SPAN_VALUES, SPAN_EXTRAS) | ODD, max_size=20),
       st.sampled_from(SPAN_MAPPINGS), st.lists(written(LOG_VALUES, LOG_EXTRAS) | ODD, max_size=20))
def test_many_is_from_text_of_each(spans, m, records):
    """A batch read at once (without the GIL) gives what from_text gives for each event,
    failures in their places, whatever the batch holds."""
    spans = [renamed_text(e, m) if isinstance(e, str) else e for e in spans]
    for encoder, mapping, events in ((span_encoder, m, spans), (log_encoder, LOG_MAPPING, records)):
        native, pure = encoder(mapping), encoder(mapping, native=False)
        expected = [outcome(pure.from_text, e) for e in events]
        assert many_outcomes(native.many, events) == expected
        assert many_outcomes(pure.many, events) == expected


@budget(200)
@given(st.data(), st.sampled_from([WIDE, NARROW]))
def test_many_metrics_are_pythons_with_one_state(data, m):
    """Batches of metric events through one encoder each, natively and event by event in
    Python: the same items or failures, and the same state after."""
    plain = METRIC_VALUES if m is WIDE else NARROW_VALUES
    native, pure = MetricEncoder(m), MetricEncoder(m)
    native_many = metric_texts(native)[1]
    pure_text = metric_from_text(pure, native=False)
    for _ in range(2):
        events = data.draw(st.lists(written(plain, METRIC_EXTRAS) | ODD, max_size=12))
        assert many_outcomes(native_many, events) == [outcome(pure_text, e) for e in events]
    assert (native.start, native.last, native.seq) == (pure.start, pure.last, pure.seq)


def test_many_keeps_the_state_in_the_events_order():
    """Events the native pass reads and events it leaves to Python, one after another in a
    batch, share the run's start and the delta series in the order they come (an escaped
    service name takes the Python path, yet is the same series)."""
    def event(second: int, service: str = '"svc"', **extra) -> str:
        fields = "".join(f', "{k}": {json.dumps(v)}' for k, v in extra.items())
        return (f'{{"timestamp": "2026-02-20T10:00:{second:02d}Z", "service": {service}, '
                f'"mem": {second}, "requests": 1{fields}}}')

    events = [event(0, region="eu"), event(5), event(7, '"sv\\u0063"'), event(9),
              event(11, region="eu")]
    native, pure = MetricEncoder(WIDE), MetricEncoder(WIDE)
    items, failed = metric_texts(native)[1](events)
    assert failed == [] and items == [metric_from_text(pure, native=False)(e) for e in events]
    assert (native.start, native.last) == (pure.start, pure.last)


# resource keys: equal tuples made apart group as one, as a dict groups them
KEYS = st.sampled_from([("a",), ("b",), ("a", ("zone", b'"x"')), ("\u00e9",)]).map(tuple)


@budget(200)
@given(st.lists(st.tuples(KEYS, st.none() | st.binary(max_size=16),
                          st.binary(max_size=300) | st.sampled_from([bytes(200_000)])),
                max_size=40))
def test_a_native_request_is_pythons(items):
    """The request of spans or log records, grouped by resource key in the order keys come,
    each item framed: the same bytes (sequences of any kind, and no items, too)."""
    native, pure = item_request(), item_request(native=False)
    assert native(items) == pure(items) == native(tuple(items))


def test_a_native_request_raises_on_what_is_no_item():
    """Not reachable from the encoders; still an exception (the sender fails the batch
    with its type), never a crash."""
    native, pure = item_request(), item_request(native=False)
    for odd in ([(("a",), None, "text")], [("a",)], [None], None):
        for request in (native, pure):
            with pytest.raises((TypeError, ValueError, IndexError)):
                request(odd)


def test_long_strings_are_framed_as_python_frames_them():
    """Lengths past one, two and three varint bytes, in names and bodies."""
    for n in (0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000):
        span = span_text("2026-02-20T10:00:00Z", "1").replace('"o"', json.dumps("é" * (n // 2)))
        native, pure = both(span_encoder, SpanMapping())
        assert outcome(native, span) == outcome(pure, span)
        record = json.dumps({"timestamp": "2026-02-20T10:00:00Z", "message": "x" * n})
        native, pure = both(log_encoder, LOG_MAPPING)
        assert outcome(native, record) == outcome(pure, record)


@pytest.mark.parametrize("signal", ["traces", "logs"])
def test_the_examples_take_the_native_path(signal):
    """The examples' events are written natively: the Python path sees only the spans with
    an error message (a field outside the common shape), and the bytes are the same."""
    mapping = SpanMapping() if signal == "traces" else LOG_MAPPING
    encoder = span_encoder if signal == "traces" else log_encoder
    pure = encoder(mapping, native=False)[1]
    handed = []
    native_type = compiled._native.SpanEncoder if signal == "traces" else compiled._native.LogEncoder
    fields = (
        [mapping.trace_id, mapping.span_id, mapping.parent_span_id, mapping.service,
         mapping.operation, mapping.start_time, mapping.duration_ms, mapping.status]
        if signal == "traces"
        else [mapping.timestamp, mapping.severity, mapping.body, mapping.service]
    )
    args = (fields, lambda e: handed.append(e) or pure(e))
    if signal == "logs":
        args = (fields, compiled.SEVERITY_NUMBERS, args[1])
    native = single(native_type(*args).many)
    events = example_events("tracing/tracing.py" if signal == "traces" else "basic/produce.py",
                            300)
    assert [native(e) for e in events] == [pure(e) for e in events]
    assert handed == [e for e in events if '"error_message"' in e]


def test_the_metrics_example_takes_the_native_path(monkeypatch):
    """multi-service's events (gauges and a delta sum, as the bench maps them) never reach
    the Python path, and give Python's items."""
    from connector import values

    mapping = MetricMapping(metrics={
        "cpu_percent": {"type": "gauge", "unit": "%"},
        "memory_mb": {"type": "gauge", "unit": "MiBy"},
        "request_count": {"type": "sum", "monotonic": True, "temporality": "delta"},
    })
    events = example_events("multi-service/metrics.py", 100)
    pure = metric_from_text(MetricEncoder(mapping), native=False)
    expected = [pure(e) for e in events]
    parsed = []
    loads = values.loads
    monkeypatch.setattr(values, "loads", lambda text: parsed.append(text) or loads(text))
    native = metric_from_text(MetricEncoder(mapping))
    assert [native(e) for e in events] == expected
    assert parsed == []


def test_without_the_extension_the_python_path_is_taken(monkeypatch):
    """scripts/demo and a plain pip install have no native build: same items, from Python."""
    text = span_text("2026-02-20T10:00:00Z", "1")
    native = codec("traces").many
    monkeypatch.setattr(compiled, "_native", None)
    pure = codec("traces").many
    assert type(pure).__name__ == "function" and type(native).__name__ != "function"
    assert native([text]) == pure([text])


def test_the_rust_unit_tests_pass():
    """native/'s own tests (its JSON reader and ISO times), in the build's cache, as
    scripts/setup.sh's build_native builds it."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    done = subprocess.run(
        ["cargo", "test", "--quiet", "--release", "--locked", "--manifest-path",
         str(ROOT / "native/Cargo.toml"), "--target-dir", str(cache / "connector/native-target")],
        env={**os.environ, "PYO3_NO_PYTHON": "1"}, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test result: ok" in done.stdout


def test_the_encoder_is_free_while_python_decides():
    """The Python path runs Python code, where another thread may take the GIL and use the
    same encoder: it is not held (borrowed) meanwhile, so using it there works."""
    good, odd = span_text("2026-02-20T10:00:00Z", "1"), span_text("2026-02-20 10:00:00Z", "1")
    pure = span_encoder(SpanMapping(), native=False)[1]
    seen = []

    def fallback(event):
        seen.append(encoder.many([good]))  # as another thread would, meanwhile
        return pure(event)

    m = SpanMapping()
    encoder = compiled._native.SpanEncoder(
        [m.trace_id, m.span_id, m.parent_span_id, m.service, m.operation, m.start_time,
         m.duration_ms, m.status], fallback)
    assert single(encoder.many)(odd) == pure(odd) and seen == [([pure(good)], [])]
    assert encoder.many([odd, good, odd]) == ([pure(odd), pure(good), pure(odd)], [])
    assert len(seen) == 3


def test_native_items_are_left_out_of_the_cycle_collector():
    """A batch holds thousands of items: tuples of strings and bytes, which can be in no
    cycle, are untracked as they are made (else a collection every few hundred events)."""
    import gc

    span = single(span_encoder(SpanMapping()).many)(span_text("2026-02-20T10:00:00Z", "1"))
    record = single(log_encoder(LOG_MAPPING).many)(
        '{"timestamp": "2026-02-20T10:00:00Z", "message": "x"}')
    encoder = MetricEncoder(WIDE)
    metric = metric_from_text(encoder)('{"timestamp": "2026-02-20T10:00:00Z", "requests": 1}')
    for item in (span, record, metric):
        assert not gc.is_tracked(item) and not gc.is_tracked(item[0])
    assert not any(gc.is_tracked(t) for t in encoder.last)


def test_metric_events_wider_than_the_native_reader_take_the_python_path():
    """The native reader holds MAX_METRIC_FIELDS fields: a wider mapping is not handed to it
    (it would decline every event, after reading it)."""
    most = compiled._native.MAX_METRIC_FIELDS
    wider = MetricMapping(metrics={f"m{k}": {"type": "gauge"} for k in range(most - 1)})
    assert type(metric_texts(MetricEncoder(wider))[1]).__name__ == "function"
    fits = MetricMapping(metrics={f"m{k}": {"type": "gauge"} for k in range(most - 2)})
    assert type(metric_texts(MetricEncoder(fits))[1]).__name__ != "function"
    event = json.dumps({"timestamp": "2026-02-20T10:00:00Z", "m0": 1, "m3": 2.5})
    assert metric_from_text(MetricEncoder(wider))(event) == metric_from_text(
        MetricEncoder(wider), native=False)(event)
