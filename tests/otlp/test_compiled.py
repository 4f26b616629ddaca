"""The compiled encoders (connector/otlp/compiled.py) against the checked ones they stand in
for: for any event, the same item bytes, or the same failure (reason, detail, exception).

`encode(doc)` is held to traces.encode_span / logs.encode_log on the parsed event, and
`from_text(event)` to those encoders after connector.values.loads, which is what the otlp
output and the Kafka codecs did per event before: parse errors included.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from connector import values
from connector.otlp.compiled import log_encoder, span_encoder
from connector.otlp.logs import encode_log
from connector.otlp.mapping import LogMapping, MappingError, SpanMapping
from connector.otlp.signals import codec
from connector.otlp.traces import encode_span
from connector.otlp.wire import field, framed, request
from tests.harness.cli import EXAMPLES
from tests.harness.fuzz import json_values
from tests.harness.hypothesis_profiles import budget

TRACE, SPAN, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331"
T0 = "2026-02-20T10:00:00.123456+00:00"

SPAN_VALUES = {
    "trace_id": [TRACE, TRACE.upper(), "0" * 32, "4bf92f35", "g" * 32, " " + TRACE[1:], 5, "",
                 None, "ab cd" + TRACE[5:]],
    "span_id": [SPAN, "0" * 16, "z" * 16, "abc", 7, None, "00f067aa 0ba902b"],
    "parent_span_id": [PARENT, None, "", "0" * 16, "abc", 5, ["x"]],
    "service": ["checkout", "", None, 1, ["s"], "caf\u00e9", "\ud800"],
    "operation": ["GET /orders", "", None, 3, {"a": 1}, "\ud800x", "x" * 300],
    "start_time": [T0, "2026-02-20T10:00:00+00:00", "2026-02-20T12:00:00.5+02:00",
                   "2026-02-20T10:00:00", "2026-02-30T00:00:00+00:00", "1969-12-31T23:59:59.5+00:00",
                   "2554-07-21T23:34:33.709551+00:00", "2400-01-01T00:00:00.999999+00:00",
                   1.7e9, 1_771_581_600, 2**70, True, None, "", "yesterday"],
    "duration_ms": [61.23, 0, 5, -1, -0.4, 1e300, 1e17, 9.9e15, 2**70, 2**63, True, "5", None,
                    [1], 1e-9],
    "status": ["OK", "ERROR", "UNSET", "ok", "STATUS_CODE_ERROR", "bad", None, ["OK"], 1, ""],
}
SPAN_EXTRAS = {
    "error_message": ["boom", "", None, [], 5],
    "kind": ["SERVER", "bogus", None],
    "attributes": [{"k": 1}, None, [1], {}],
    "resource": [{"zone": "a"}, None, 5],
    "end_time": [T0, None],
    "links": [[], None, [{"trace_id": TRACE, "span_id": SPAN}]],
    "events": [[], None],
    "extra": [1, None, "x", 2**70],
}
LOG_VALUES = {
    "timestamp": [T0, "2026-02-20T10:00:00+00:00", "2026-02-20T10:00:00", "2026-02-30T00:00:00Z",
                  "1969-12-31T23:59:59Z", "1969-12-31T23:59:59.5+00:00", 1.5e9, 2**70, -1, True,
                  None, "", "2554-07-21T23:34:33.709551615+00:00", "9999-12-31T23:59:59+00:00"],
    "level": ["INFO", "warning", "", " Error ", "x" * 40, "\ud800", 0, 24, 25, 1.5, True, None,
              ["INFO"]],
    "message": ["Request processed", "", None, "\ud800", 5, 2**70, 1.5, [1, None], {"a": 1},
                True, "x" * 300],
    "service": ["svc", "", None, 1, ["s"], "é"],
}
LOG_EXTRAS = {
    "trace_id": [TRACE, "0" * 32, None, ""],
    "span_id": [SPAN, None, "z" * 16],
    "attributes": [{"k": 1}, None, [1]],
    "resource": [{"zone": "a"}, None, 5],
    "extra": [1, None, 2**70],
}
LOG_MAPPING = LogMapping(body="message", severity="level")


@st.composite
def docs(draw, plain: dict, extras: dict):
    """The common shape, each field kept, dropped, made odd or anything; sometimes more."""
    doc = {name: pool[0] for name, pool in plain.items()}
    for name, pool in plain.items():
        choice = draw(st.sampled_from(["keep", "keep", "odd", "any", "drop"]))
        if choice == "odd":
            doc[name] = draw(st.sampled_from(pool))
        elif choice == "any":
            doc[name] = draw(json_values)
        elif choice == "drop":
            del doc[name]
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from(sorted(extras)))
        doc[name] = draw(st.sampled_from(extras[name]) | json_values)
    return doc


@st.composite
def texts(draw, plain: dict, extras: dict):
    """An event as text: the doc's JSON, maybe made odder (a key twice, cut short)."""
    text = json.dumps(draw(docs(plain, extras)))
    how = draw(st.sampled_from(["as is", "as is", "twice", "cut", "pad", "not an object"]))
    if how == "twice":  # the last one counts
        name = draw(st.sampled_from(sorted(plain)))
        again = json.dumps({name: draw(st.sampled_from(plain[name]))})[1:]
        text = text[:-1] + ("," if len(text) > 2 else "") + again
    elif how == "cut":
        text = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    elif how == "pad":
        text = f" \n{text}\t"
    elif how == "not an object":
        text = json.dumps([json.loads(text)])
    return text


def outcome(encode, *args):
    """What an encoder gives: the item, or how it failed (as the outputs report it)."""
    try:
        return ("item", encode(*args))
    except MappingError as exc:
        return ("refused", exc.reason, exc.detail)
    except orjson.JSONDecodeError as exc:
        return ("not JSON", type(exc).__name__, str(exc))
    except Exception as exc:  # the outputs count these too, by type
        return ("unexpected", type(exc).__name__, str(exc))


SPAN_MAPPINGS = [SpanMapping(), SpanMapping(service="svc", operation="name", status="state")]


@budget(300)
@given(docs(SPAN_VALUES, SPAN_EXTRAS), st.sampled_from(SPAN_MAPPINGS))
@example({"trace_id": TRACE, "span_id": SPAN, "service": "s", "operation": "o",
          "start_time": "2400-01-01T00:00:00.999999+00:00", "duration_ms": 1}, SpanMapping())
def test_a_compiled_span_is_the_checked_span(doc, m):
    doc = _renamed(doc, m)
    encode, _ = span_encoder(m)
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
    text = _renamed_text(text, m)
    _, from_text = span_encoder(m)
    assert outcome(from_text, text) == outcome(lambda t: encode_span(values.loads(t), m), text)


@budget(300)
@given(docs(LOG_VALUES, LOG_EXTRAS))
@example({"timestamp": "2554-07-21T23:34:33.709551+00:00", "level": "INFO"})
def test_a_compiled_log_record_is_the_checked_one(doc):
    encode, _ = log_encoder(LOG_MAPPING)
    assert outcome(encode, doc, LOG_MAPPING) == outcome(encode_log, doc, LOG_MAPPING)


@budget(300)
@given(texts(LOG_VALUES, LOG_EXTRAS))
@example('{"timestamp": "2026-02-20T10:00:00+00:00", "message": 18446744073709551617}')
@example('{"timestamp": "2026-02-20T10:00:00+00:00", "message": "\\ud800"}')
def test_a_log_record_from_text_is_the_checked_one_of_values_loads(text):
    _, from_text = log_encoder(LOG_MAPPING)
    assert outcome(from_text, text) == outcome(
        lambda t: encode_log(values.loads(t), LOG_MAPPING), text
    )


def test_a_field_mapped_twice_takes_the_checked_encoder():
    """status and kind read the same field: the shortcut would not see the kind."""
    m = SpanMapping(kind="status")
    encode, from_text = span_encoder(m)
    doc = {"trace_id": TRACE, "span_id": SPAN, "service": "s", "operation": "o",
           "start_time": T0, "duration_ms": 1, "status": "OK"}
    assert outcome(encode, doc, m) == outcome(encode_span, doc, m)
    assert outcome(encode, doc, m)[0] == "refused"  # OK is no span kind
    assert outcome(from_text, json.dumps(doc)) == outcome(encode_span, doc, m)
    lm = LogMapping(body="level")
    encode, _ = log_encoder(lm)
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
    path = EXAMPLES / ("tracing/tracing.py" if signal == "traces" else "basic/produce.py")
    spec = importlib.util.spec_from_file_location(f"script_{signal}", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for k in range(300):
        r = script.produce({"timestamp": start + timedelta(seconds=k), "tags": ()})
        events += [r] if isinstance(r, str) else r
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


def _renamed(doc: dict, m: SpanMapping) -> dict:
    names = {"service": m.service, "operation": m.operation, "status": m.status}
    return {names.get(k, k): v for k, v in doc.items()}


def _renamed_text(text: str, m: SpanMapping) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    if not isinstance(doc, dict):
        return text
    return json.dumps(_renamed(doc, m))
