"""The compiled encoders (connector/otlp/compiled.py) against the checked ones they stand in
for: for any event, the same item bytes, or the same failure (reason, detail, exception).

`encode(doc)` is held to traces.encode_span / logs.encode_log on the parsed event, and
`from_text(event)` to those encoders after connector.values.loads, which is what the otlp
output and the Kafka codecs did per event before: parse errors included.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from connector import values
from connector.otlp.compiled import log_encoder, span_encoder
from connector.otlp.logs import encode_log
from connector.otlp.mapping import LogMapping, SpanMapping
from connector.otlp.signals import codec
from connector.otlp.traces import encode_span
from connector.otlp.wire import field, framed, request
from tests.harness.hypothesis_profiles import budget
from tests.harness.otlp_events import (
    LOG_EXTRAS,
    LOG_MAPPING,
    LOG_VALUES,
    SPAN,
    SPAN_EXTRAS,
    SPAN_MAPPINGS,
    SPAN_VALUES,
    T0,
    TRACE,
    docs,
    example_events,
    outcome,
    renamed,
    renamed_text,
    texts,
)


@budget(300)
@given(docs(SPAN_VALUES, SPAN_EXTRAS), st.sampled_from(SPAN_MAPPINGS))
@example({"trace_id": TRACE, "span_id": SPAN, "service": "s", "operation": "o",
          "start_time": "2400-01-01T00:00:00.999999+00:00", "duration_ms": 1}, SpanMapping())
def test_a_compiled_span_is_the_checked_span(doc, m):
    doc = renamed(doc, m)
    encode, _, _ = span_encoder(m)
    assert outcome(encode, doc, m) == outcome(encode_span, doc, m)


@budget(300)
@given(texts(SPAN_VALUES, SPAN_EXTRAS), st.sampled_from(SPAN_MAPPINGS))
@example('{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7", '
         '"service": "s", "operation": "o", "start_time": "2026-02-20T10:00:00+00:00", '
         '"duration_ms": 18446744073709551617}', SpanMapping())
@example('{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7", '
         '"service": "\\ud800", "operation": "o", "start_time": "2026-02-20T10:00:00+00:00", '
         '"duration_ms": 1}', SpanMapping())
def test_a_span_from_text_is_the_checked_span_of_values_loads(text, m):
    text = renamed_text(text, m)
    _, from_text, _ = span_encoder(m)
    assert outcome(from_text, text) == outcome(lambda t: encode_span(values.loads(t), m), text)


@budget(300)
@given(docs(LOG_VALUES, LOG_EXTRAS))
@example({"timestamp": "2554-07-21T23:34:33.709551+00:00", "level": "INFO"})
def test_a_compiled_log_record_is_the_checked_one(doc):
    encode, _, _ = log_encoder(LOG_MAPPING)
    assert outcome(encode, doc, LOG_MAPPING) == outcome(encode_log, doc, LOG_MAPPING)


@budget(300)
@given(texts(LOG_VALUES, LOG_EXTRAS))
@example('{"timestamp": "2026-02-20T10:00:00+00:00", "message": 18446744073709551617}')
@example('{"timestamp": "2026-02-20T10:00:00+00:00", "message": "\\ud800"}')
def test_a_log_record_from_text_is_the_checked_one_of_values_loads(text):
    _, from_text, _ = log_encoder(LOG_MAPPING)
    assert outcome(from_text, text) == outcome(
        lambda t: encode_log(values.loads(t), LOG_MAPPING), text
    )


def test_a_field_mapped_twice_takes_the_checked_encoder():
    """status and kind read the same field: the shortcut would not see the kind."""
    m = SpanMapping(kind="status")
    encode, from_text, _ = span_encoder(m)
    doc = {"trace_id": TRACE, "span_id": SPAN, "service": "s", "operation": "o",
           "start_time": T0, "duration_ms": 1, "status": "OK"}
    assert outcome(encode, doc, m) == outcome(encode_span, doc, m)
    assert outcome(encode, doc, m)[0] == "refused"  # OK is no span kind
    assert outcome(from_text, json.dumps(doc)) == outcome(encode_span, doc, m)
    lm = LogMapping(body="level")
    encode, _, _ = log_encoder(lm)
    record = {"timestamp": T0, "level": "INFO", "service": "s"}
    assert outcome(encode, record, lm) == outcome(encode_log, record, lm)


@pytest.mark.parametrize("signal", ["traces", "logs"])
def test_the_examples_go_the_compiled_way_and_decode(signal, monkeypatch):
    """The examples' events take the compiled shape (the checked encoders are not called
    but for spans with an error message), and their request decodes with opentelemetry-proto."""
    import connector.otlp.compiled as compiled

    calls = []
    checked = compiled.encode_span if signal == "traces" else compiled.encode_log
    name = "encode_span" if signal == "traces" else "encode_log"
    monkeypatch.setattr(compiled, name, lambda doc, m: calls.append(doc) or checked(doc, m))
    mapping = None if signal == "traces" else LOG_MAPPING
    c = codec(signal, mapping)
    events = example_events("tracing/tracing.py" if signal == "traces" else "basic/produce.py",
                            300)
    items = [c.from_text(e) for e in events]
    assert items == [checked(values.loads(e), c.mapping) for e in events]
    assert len(calls) == sum('"error_message"' in e for e in events)
    kind = ExportTraceServiceRequest if signal == "traces" else ExportLogsServiceRequest
    decoded = kind.FromString(c.request(items))
    groups = decoded.resource_spans if signal == "traces" else decoded.resource_logs
    scoped = [g.scope_spans[0].spans if signal == "traces" else g.scope_logs[0].log_records
              for g in groups]
    assert sum(len(s) for s in scoped) == len(events)


@given(st.lists(st.binary(max_size=300) | st.sampled_from([bytes(4095), bytes(4096), bytes(20000)]),
                max_size=20))
@budget(100)
def test_request_frames_items_as_field_does(items):
    """The table of heads writes what field() writes, for items of any length."""
    body = request({("s",): items})
    assert body.endswith(b"".join(field(b"\x12", item) for item in items))
    assert framed(b"\x0a", items) == b"".join(field(b"\x0a", item) for item in items)


def test_a_resource_field_is_written_once_per_key():
    """Each request names its resources again: the field is kept per key, not rebuilt."""
    from connector.otlp.wire import resource_field, resource_message

    key = ("svc", ("zone", b'"a"'))
    assert resource_field(key) is resource_field(tuple(list(key)))
    assert resource_field(key) == field(b"\x0a", resource_message(key))
