"""Span JSON -> OTLP mapping, the Kafka OTLP encodings and the trace integrity checker (no network)."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from connector import __version__
from connector.otlp import traces as spans
from connector.otlp.codec import otlp_encoder
from connector.otlp.mapping import DEFAULT_MAPPING, MappingError, SpanMapping
from connector.trace_check import TraceChecker

ROOT = Path(__file__).resolve().parents[2]


# The connector writes OTLP's wire format by hand; every test below reads it back with
# opentelemetry-proto, so each assertion also checks the encoding.
def to_span(doc, mapping: SpanMapping = DEFAULT_MAPPING) -> tuple[tuple, Span]:
    key, trace_id, raw = spans.encode_span(doc, mapping)
    span = Span.FromString(raw)
    assert span.trace_id == trace_id
    assert span.SerializeToString() == raw  # byte for byte what protobuf itself would write
    return key, span


def group_spans(pairs: list[tuple[tuple, Span]]) -> dict:
    return spans.group_spans([(key, s.trace_id, s.SerializeToString()) for key, s in pairs])


def export_request(grouped: dict) -> ExportTraceServiceRequest:
    raw = spans.export_request(grouped)
    request = ExportTraceServiceRequest.FromString(raw)
    assert request.SerializeToString() == raw
    return request

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
PARENT = "53995c3f42cd8ad8"
START = "2024-05-01T12:00:00Z"
START_NS = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z in ns since the epoch
MS = 1_000_000  # ns per ms
DROP = object()  # event(field=DROP) removes the field


def event(**fields) -> dict:
    """A valid span event in the default mapping, with fields overridden or DROPped."""
    doc = {
        "trace_id": TRACE,
        "span_id": SPAN,
        "parent_span_id": PARENT,
        "service": "checkout",
        "operation": "POST /orders",
        "start_time": START,
        "duration_ms": 12.34,
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not DROP}


def span_of(**fields) -> Span:
    return to_span(event(**fields))[1]


def attrs(kvs) -> dict[str, AnyValue]:
    return {kv.key: kv.value for kv in kvs}


def s(v: str) -> AnyValue:
    return AnyValue(string_value=v)


def dumps(doc) -> str:
    return orjson.dumps(doc).decode()


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the default mapping ------------------------------------------------------------


def test_ids_name_and_defaults():
    key, span = to_span(event())
    assert key == ("checkout",)
    assert span.trace_id == bytes.fromhex(TRACE)
    assert span.span_id == bytes.fromhex(SPAN)
    assert span.parent_span_id == bytes.fromhex(PARENT)
    assert span.name == "POST /orders"
    assert span.kind == Span.SPAN_KIND_INTERNAL
    assert span.status.code == Status.STATUS_CODE_UNSET
    assert span.status.message == ""
    assert list(span.events) == []
    assert list(span.attributes) == []  # mapped fields never become attributes


def test_uppercase_hex_ids_are_accepted():
    span = span_of(trace_id=TRACE.upper(), span_id=SPAN.upper())
    assert span.trace_id == bytes.fromhex(TRACE)
    assert span.span_id == bytes.fromhex(SPAN)


@pytest.mark.parametrize("parent", [None, "", DROP], ids=["null", "empty", "missing"])
def test_no_parent_is_an_empty_parent_span_id(parent):
    assert span_of(parent_span_id=parent).parent_span_id == b""


@pytest.mark.parametrize(
    ("start_time", "start_ns"),
    [
        ("2024-05-01T12:00:00Z", START_NS),
        ("2024-05-01T12:00:00+00:00", START_NS),
        ("2024-05-01T14:00:00+02:00", START_NS),
        ("2024-05-01T09:30:00-02:30", START_NS),
        ("2024-05-01T12:00:00.123456Z", START_NS + 123_456_000),
        ("2024-05-01T14:00:00.000001+02:00", START_NS + 1_000),
        ("2024-05-01T12:00:00", START_NS),  # naive: read as UTC
    ],
)
def test_start_time_to_nanoseconds(start_time, start_ns):
    span = span_of(start_time=start_time, duration_ms=12.34)
    assert span.start_time_unix_nano == start_ns
    assert span.end_time_unix_nano == start_ns + 12_340_000


@pytest.mark.parametrize(
    ("duration_ms", "duration_ns"),
    [(0, 0), (1, 1_000_000), (12.34, 12_340_000), (0.1, 100_000), (0.001, 1_000), (1500, 1_500_000_000)],
)
def test_duration_ms_to_end_time(duration_ms, duration_ns):
    span = span_of(duration_ms=duration_ms)
    assert span.start_time_unix_nano == START_NS
    assert span.end_time_unix_nano == START_NS + duration_ns


def test_end_time_instead_of_duration():
    span = span_of(duration_ms=DROP, end_time="2024-05-01T14:00:01.500000+02:00")
    assert span.start_time_unix_nano == START_NS
    assert span.end_time_unix_nano == START_NS + 1_500 * MS


def test_end_time_wins_over_duration():
    span = span_of(duration_ms=5, end_time="2024-05-01T12:00:00.250Z")
    assert span.end_time_unix_nano == START_NS + 250 * MS


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("OK", Status.STATUS_CODE_OK),
        ("ok", Status.STATUS_CODE_OK),
        ("Ok", Status.STATUS_CODE_OK),
        ("ERROR", Status.STATUS_CODE_ERROR),
        ("error", Status.STATUS_CODE_ERROR),
        ("UNSET", Status.STATUS_CODE_UNSET),
        ("unset", Status.STATUS_CODE_UNSET),
        ("STATUS_CODE_ERROR", Status.STATUS_CODE_ERROR),
        (None, Status.STATUS_CODE_UNSET),
        (DROP, Status.STATUS_CODE_UNSET),
    ],
)
def test_status_code(status, code):
    span = span_of(status=status)
    assert span.status.code == code
    assert span.status.message == ""


def test_error_message_is_status_message_and_exception_event():
    span = span_of(status="ERROR", error_message="payment-provider: internal error")
    assert span.status.code == Status.STATUS_CODE_ERROR
    assert span.status.message == "payment-provider: internal error"
    assert len(span.events) == 1
    exc = span.events[0]
    assert exc.name == "exception"
    assert exc.time_unix_nano == START_NS + 12_340_000  # at the span's end
    assert list(exc.attributes) == [KeyValue(key="exception.message", value=s("payment-provider: internal error"))]
    assert list(span.attributes) == []  # error_message is a mapped field, not an attribute


@pytest.mark.parametrize("message", [None, "", DROP])
def test_no_error_message_no_event(message):
    span = span_of(status="OK", error_message=message)
    assert span.status.message == ""
    assert list(span.events) == []


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("server", Span.SPAN_KIND_SERVER),
        ("CLIENT", Span.SPAN_KIND_CLIENT),
        ("SPAN_KIND_PRODUCER", Span.SPAN_KIND_PRODUCER),
        ("Consumer", Span.SPAN_KIND_CONSUMER),
        ("internal", Span.SPAN_KIND_INTERNAL),
        (None, Span.SPAN_KIND_INTERNAL),
        (DROP, Span.SPAN_KIND_INTERNAL),
    ],
)
def test_kind(kind, value):
    assert span_of(kind=kind).kind == value


def test_attributes_and_extra_fields_with_their_types():
    span = span_of(
        region="eu-west-1",  # extra top-level fields become attributes too
        retries=3,
        cached=False,
        dropped=None,  # nulls are left out
        attributes={
            "http.method": "POST",
            "http.status_code": 201,
            "ratio": 0.25,
            "sampled": True,
            "tags": ["a", 1, 2.5, False],
            "peer": {"host": "db-1", "port": 5432, "meta": {"zone": "b"}},
            "nothing": None,
        },
    )
    assert [kv.key for kv in span.attributes] == [
        "region", "retries", "cached",
        "http.method", "http.status_code", "ratio", "sampled", "tags", "peer",
    ]
    assert attrs(span.attributes) == {
        "region": s("eu-west-1"),
        "retries": AnyValue(int_value=3),
        "cached": AnyValue(bool_value=False),
        "http.method": s("POST"),
        "http.status_code": AnyValue(int_value=201),
        "ratio": AnyValue(double_value=0.25),
        "sampled": AnyValue(bool_value=True),
        "tags": AnyValue(array_value=ArrayValue(values=[
            s("a"), AnyValue(int_value=1), AnyValue(double_value=2.5), AnyValue(bool_value=False),
        ])),
        "peer": AnyValue(kvlist_value=KeyValueList(values=[
            KeyValue(key="host", value=s("db-1")),
            KeyValue(key="port", value=AnyValue(int_value=5432)),
            KeyValue(key="meta", value=AnyValue(kvlist_value=KeyValueList(values=[
                KeyValue(key="zone", value=s("b")),
            ]))),
        ])),
    }


def test_attributes_object_wins_over_a_top_level_field_of_the_same_name():
    span = span_of(region="top", attributes={"region": "inner"})
    assert list(span.attributes) == [KeyValue(key="region", value=s("inner"))]


def test_mapped_fields_do_not_leak_as_attributes():
    span = span_of(
        status="OK", kind="server", error_message="x", end_time="2024-05-01T12:00:01Z",
        attributes={"a": 1}, resource={"env": "prod"},
    )
    assert list(span.attributes) == [KeyValue(key="a", value=AnyValue(int_value=1))]


def test_resource_object_becomes_resource_attributes():
    key, span = to_span(event(resource={"deployment.environment": "prod", "replicas": 3, "canary": True}))
    request = export_request(group_spans([(key, span)]))
    assert len(request.resource_spans) == 1
    resource = request.resource_spans[0].resource
    assert list(resource.attributes) == [  # service.name first, then the resource's keys sorted
        KeyValue(key="service.name", value=s("checkout")),
        KeyValue(key="canary", value=AnyValue(bool_value=True)),
        KeyValue(key="deployment.environment", value=s("prod")),
        KeyValue(key="replicas", value=AnyValue(int_value=3)),
    ]
    assert list(span.attributes) == []


# -- events that cannot be mapped ---------------------------------------------------------

BAD = [
    # (id, event, reason)
    ("list", [1, 2], "event is not a JSON object"),
    ("string", "a span", "event is not a JSON object"),
    ("null", None, "event is not a JSON object"),
    ("no trace_id", event(trace_id=DROP), "field 'trace_id' is missing"),
    ("null trace_id", event(trace_id=None), "field 'trace_id' is missing"),
    ("no span_id", event(span_id=DROP), "field 'span_id' is missing"),
    ("empty span_id", event(span_id=""), "field 'span_id' is missing"),
    ("no operation", event(operation=DROP), "field 'operation' is missing"),
    ("empty operation", event(operation=""), "field 'operation' is missing"),
    ("no service", event(service=DROP), "field 'service' is missing"),
    ("non-string service", event(service=7), "field 'service' is missing"),
    ("no start_time", event(start_time=DROP), "field 'start_time' is missing"),
    ("no duration", event(duration_ms=DROP), "field 'duration_ms' (or 'end_time') is missing"),
    ("string duration", event(duration_ms="12"), "field 'duration_ms' (or 'end_time') is missing"),
    ("bool duration", event(duration_ms=True), "field 'duration_ms' (or 'end_time') is missing"),
    ("short trace_id", event(trace_id="4bf92f35"), "field 'trace_id' must be 32 hex characters, got '4bf92f35'"),
    ("long span_id", event(span_id=SPAN + "00"), f"field 'span_id' must be 16 hex characters, got '{SPAN}00'"),
    ("numeric span_id", event(span_id=123), "field 'span_id' must be 16 hex characters, got 123"),
    ("short parent", event(parent_span_id="abc"), "field 'parent_span_id' must be 16 hex characters, got 'abc'"),
    ("non-hex trace_id", event(trace_id="z" * 32), f"field 'trace_id' is not hex, got '{'z' * 32}'"),
    ("non-hex span_id", event(span_id="00f067aa0ba902bg"), "field 'span_id' is not hex, got '00f067aa0ba902bg'"),
    ("non-hex parent", event(parent_span_id="xyz-not-hex-1234"), "field 'parent_span_id' is not hex, got 'xyz-not-hex-1234'"),
    ("zero trace_id", event(trace_id="0" * 32), "field 'trace_id' is all zeros, which OTLP treats as invalid"),
    ("zero span_id", event(span_id="0" * 16), "field 'span_id' is all zeros, which OTLP treats as invalid"),
    ("zero parent", event(parent_span_id="0" * 16), "field 'parent_span_id' is all zeros, which OTLP treats as invalid"),
    ("bad start_time", event(start_time="yesterday"), "field 'start_time' is not an ISO-8601 time, got 'yesterday'"),
    ("bool start_time", event(start_time=True), "field 'start_time' is not an ISO-8601 time, got True"),
    ("bad end_time", event(end_time="2024-13-01T00:00:00Z"), "field 'end_time' is not an ISO-8601 time, got '2024-13-01T00:00:00Z'"),
    ("bad status", event(status="FAILED"), "field 'status' must be OK, ERROR or UNSET, got 'FAILED'"),
    ("numeric status", event(status=2), "field 'status' must be OK, ERROR or UNSET, got 2"),
    ("bad kind", event(kind="sideways"), "field 'kind' is not a span kind, got 'sideways'"),
    ("attributes list", event(attributes=["a", "b"]), "field 'attributes' must be an object"),
    ("attributes string", event(attributes="a=b"), "field 'attributes' must be an object"),
    ("resource list", event(resource=["env"]), "field 'resource' must be an object"),
    ("resource string", event(resource="prod"), "field 'resource' must be an object"),
    ("negative duration", event(duration_ms=-1), "the span ends before it starts"),
    ("end before start", event(duration_ms=DROP, end_time="2024-05-01T11:59:59Z"), "the span ends before it starts"),
]


@pytest.mark.parametrize(("doc", "reason"), [(d, r) for _, d, r in BAD], ids=[i for i, _, _ in BAD])
def test_unmappable_event_reason(doc, reason):
    with pytest.raises(MappingError) as info:
        to_span(doc)
    assert str(info.value) == reason


@pytest.mark.parametrize(("doc", "reason"), [(d, r) for _, d, r in BAD], ids=[i for i, _, _ in BAD])
def test_encoder_counts_unmappable_events(doc, reason):
    failed = []

    def fail(why, ev, detail=None):
        failed.append((why, ev, detail))

    out = list(otlp_encoder("otlp_proto")([dumps(doc)], fail))
    assert out == []
    # the counted reason is bounded (a metric label): the value goes to the dead letter only
    bounded, _, got = reason.partition(", got ")
    assert failed == [(f"cannot map to a span: {bounded}", dumps(doc), f"got {got}" if got else None)]


# -- a custom mapping -------------------------------------------------------------------


def test_custom_mapping():
    mapping = SpanMapping(
        trace_id="traceId", span_id="id", parent_span_id="parentId", service="svc",
        operation="name", start_time="ts", duration_ms="dur", status="state",
        error_message="err", kind="spanKind", attributes="tags", resource="res",
    )
    doc = {
        "traceId": TRACE, "id": SPAN, "parentId": PARENT, "svc": "billing", "name": "charge",
        "ts": "2024-05-01T14:00:00+02:00", "dur": 2.5, "state": "error", "err": "declined",
        "spanKind": "client", "tags": {"amount": 12}, "res": {"env": "prod"},
        "customer": "c-42",
        "trace_id": "not mapped",  # a default name is an ordinary field under a custom mapping
    }
    key, span = to_span(doc, mapping)
    assert key == ("billing", ("env", b'"prod"'))
    assert span.trace_id == bytes.fromhex(TRACE)
    assert span.span_id == bytes.fromhex(SPAN)
    assert span.parent_span_id == bytes.fromhex(PARENT)
    assert span.name == "charge"
    assert span.start_time_unix_nano == START_NS
    assert span.end_time_unix_nano == START_NS + 2_500_000
    assert span.status.code == Status.STATUS_CODE_ERROR
    assert span.status.message == "declined"
    assert span.kind == Span.SPAN_KIND_CLIENT
    assert attrs(span.attributes) == {  # none of the renamed source fields leak
        "customer": s("c-42"),
        "trace_id": s("not mapped"),
        "amount": AnyValue(int_value=12),
    }


def test_custom_mapping_reasons_name_the_configured_fields():
    mapping = SpanMapping(trace_id="traceId", span_id="id", service="svc", operation="name", start_time="ts", duration_ms="dur")
    doc = {"traceId": TRACE, "id": SPAN, "svc": "billing", "name": "charge", "ts": START}
    with pytest.raises(MappingError, match=r"^field 'dur' \(or 'end_time'\) is missing$"):
        to_span(doc, mapping)
    with pytest.raises(MappingError, match=r"^field 'id' is missing$"):
        to_span({**doc, "dur": 1, "id": None}, mapping)
    # the default names mean nothing under this mapping
    with pytest.raises(MappingError, match=r"^field 'name' is missing$"):
        to_span(event(), mapping)


# -- grouping into one request ----------------------------------------------------------


def test_export_request_groups_by_service_and_resource():
    spans = [
        to_span(event(service="api", span_id="0000000000000001")),
        to_span(event(service="db", span_id="0000000000000002")),
        to_span(event(service="api", span_id="0000000000000003")),
        to_span(event(service="api", span_id="0000000000000004", resource={"env": "prod", "zone": "b"})),
        to_span(event(service="api", span_id="0000000000000005", resource={"zone": "b", "env": "prod"})),
    ]
    request = export_request(group_spans(spans))
    groups = [
        (list(rs.resource.attributes), [sp.span_id.hex()[-1] for ss in rs.scope_spans for sp in ss.spans])
        for rs in request.resource_spans
    ]
    assert groups == [
        ([KeyValue(key="service.name", value=s("api"))], ["1", "3"]),
        ([KeyValue(key="service.name", value=s("db"))], ["2"]),
        (
            [
                KeyValue(key="service.name", value=s("api")),
                KeyValue(key="env", value=s("prod")),
                KeyValue(key="zone", value=s("b")),
            ],
            ["4", "5"],  # the same resource whatever the key order
        ),
    ]
    for rs in request.resource_spans:
        assert len(rs.scope_spans) == 1
        assert rs.scope_spans[0].scope.name == "connector"
        assert rs.scope_spans[0].scope.version == __version__


# -- the Kafka OTLP encodings ------------------------------------------------------------

TRACE_B = "0af7651916cd43dd8448eb211c80319c"


def _mixed_events() -> list[str]:
    return [
        dumps(event(span_id="0000000000000001", parent_span_id=None, service="api", kind="server")),
        dumps(event(trace_id=TRACE_B, span_id="0000000000000002", parent_span_id=None)),
        "not json {",
        dumps(event(span_id="0000000000000003", parent_span_id="0000000000000001", service="db", status="ERROR", error_message="boom")),
        dumps(event(operation=DROP)),
        dumps(event(trace_id=TRACE_B.upper(), span_id="0000000000000004", parent_span_id="0000000000000002")),
    ]


def _encode(encoding: str):
    events, failed = _mixed_events(), []
    out = list(otlp_encoder(encoding)(events, lambda why, ev, detail=None: failed.append((why, ev))))
    assert failed == [
        ("not JSON: cannot map to a span", "not json {"),
        ("cannot map to a span: field 'operation' is missing", events[4]),
    ]
    assert [(trace, members) for trace, _, members in out] == [
        (TRACE, [events[0], events[3]]),
        (TRACE_B, [events[1], events[5]]),
    ]
    return out


def test_otlp_proto_one_request_per_trace():
    out = _encode("otlp_proto")
    first = ExportTraceServiceRequest.FromString(out[0][1])
    assert [
        (rs.resource.attributes[0].value.string_value, [sp.span_id.hex() for sp in rs.scope_spans[0].spans])
        for rs in first.resource_spans
    ] == [("api", ["0000000000000001"]), ("db", ["0000000000000003"])]
    db = first.resource_spans[1].scope_spans[0].spans[0]
    assert db.trace_id == bytes.fromhex(TRACE)
    assert db.parent_span_id == bytes.fromhex("0000000000000001")
    assert db.status.code == Status.STATUS_CODE_ERROR
    assert db.events[0].name == "exception"
    second = ExportTraceServiceRequest.FromString(out[1][1])
    spans = [sp for rs in second.resource_spans for sp in rs.scope_spans[0].spans]
    assert [sp.trace_id for sp in spans] == [bytes.fromhex(TRACE_B)] * 2


def test_otlp_json_one_request_per_trace():
    out = _encode("otlp_json")
    first = orjson.loads(out[0][1])
    api, db = first["resourceSpans"]
    assert api["resource"] == {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]}
    assert api["scopeSpans"][0]["scope"] == {"name": "connector", "version": __version__}
    assert api["scopeSpans"][0]["spans"] == [{
        "traceId": TRACE,  # hex, not base64
        "spanId": "0000000000000001",
        "name": "POST /orders",
        "kind": 2,
        "startTimeUnixNano": str(START_NS),
        "endTimeUnixNano": str(START_NS + 12_340_000),
    }]
    span = db["scopeSpans"][0]["spans"][0]
    assert (span["traceId"], span["spanId"], span["parentSpanId"]) == (TRACE, "0000000000000003", "0000000000000001")
    assert span["kind"] == 1
    assert span["status"] == {"code": 2, "message": "boom"}
    assert span["events"] == [{
        "timeUnixNano": str(START_NS + 12_340_000),
        "name": "exception",
        "attributes": [{"key": "exception.message", "value": {"stringValue": "boom"}}],
    }]
    second = orjson.loads(out[1][1])
    spans = second["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert [(sp["traceId"], sp["spanId"], sp.get("parentSpanId")) for sp in spans] == [
        (TRACE_B, "0000000000000002", None),
        (TRACE_B, "0000000000000004", "0000000000000002"),  # upper-case input, lower-case out
    ]


def test_encoder_with_a_custom_mapping():
    mapping = SpanMapping(trace_id="traceId", span_id="id", service="svc", operation="name", start_time="ts", duration_ms="dur")
    doc = {"traceId": TRACE, "id": SPAN, "svc": "billing", "name": "charge", "ts": START, "dur": 1}
    out = list(otlp_encoder("otlp_json", mapping)([dumps(doc)], lambda *a: pytest.fail(f"failed: {a}")))
    assert [trace for trace, _, _ in out] == [TRACE]
    span = orjson.loads(out[0][1])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert (span["traceId"], span["spanId"], span["name"]) == (TRACE, SPAN, "charge")
    assert "attributes" not in span


# -- trace integrity ---------------------------------------------------------------------

ROOT_ID, A_ID, B_ID = "000000000000000a", "000000000000000b", "000000000000000c"


def tspan(span_id: str, parent: str | None, start_ms: float, duration_ms: float, trace: str = TRACE, **kw) -> str:
    start = datetime.fromtimestamp(START_NS / 1e9 + start_ms / 1000, UTC).isoformat()
    return dumps(event(trace_id=trace, span_id=span_id, parent_span_id=parent, start_time=start, duration_ms=duration_ms, **kw))


def check(*events: str):
    checker = TraceChecker()
    checker.add(list(events))
    return checker.finish()


def test_checker_good_tree():
    [report] = check(
        tspan(A_ID, ROOT_ID, 10, 30),
        tspan(B_ID, ROOT_ID, 50, 40),
        tspan(ROOT_ID, None, 0, 100),
    )
    assert (report.trace_id, report.spans, report.roots, report.orphans, report.early, report.late) == (TRACE, 3, 1, 0, 0, 0)
    assert not report.broken
    assert str(report) == f"trace {TRACE}: 3 spans, 1 root(s), 0 orphan(s), 0 start before parent, 0 end after parent: ok"


def test_checker_child_may_share_its_parents_bounds():
    [report] = check(tspan(ROOT_ID, None, 0, 100), tspan(A_ID, ROOT_ID, 0, 100))
    assert (report.early, report.late, bool(report.broken)) == (0, 0, False)


def test_checker_orphans():
    [report] = check(
        tspan(ROOT_ID, None, 0, 100),
        tspan(A_ID, "ffffffffffffffff", 10, 30),
        tspan(B_ID, "eeeeeeeeeeeeeeee", 50, 40),
    )
    assert (report.spans, report.roots, report.orphans) == (3, 1, 2)
    assert report.broken
    assert str(report) == f"trace {TRACE}: 3 spans, 1 root(s), 2 orphan(s), 0 start before parent, 0 end after parent: BROKEN"


def test_checker_two_roots():
    [report] = check(tspan(ROOT_ID, None, 0, 100), tspan(A_ID, "", 10, 30))
    assert (report.roots, report.orphans) == (2, 0)
    assert report.broken


def test_checker_no_root():
    [report] = check(tspan(A_ID, B_ID, 10, 30), tspan(B_ID, A_ID, 10, 30))
    assert (report.roots, report.orphans) == (0, 0)
    assert report.broken


def test_checker_child_outside_its_parent():
    [report] = check(
        tspan(ROOT_ID, None, 10, 100),  # 10..110 ms
        tspan(A_ID, ROOT_ID, 5, 20),  # starts before
        tspan(B_ID, ROOT_ID, 60, 60),  # ends after
        tspan("000000000000000d", ROOT_ID, 20, 50),  # inside
        tspan("000000000000000e", ROOT_ID, 90, duration_ms=DROP, end_time="2024-05-01T12:00:00.111Z"),  # ends after, by end_time
    )
    assert (report.spans, report.roots, report.orphans, report.early, report.late) == (5, 1, 0, 1, 2)
    assert report.broken
    assert str(report) == f"trace {TRACE}: 5 spans, 1 root(s), 0 orphan(s), 1 start before parent, 2 end after parent: BROKEN"


def test_checker_groups_by_trace_across_batches_and_summarizes():
    checker = TraceChecker()
    checker.add([tspan(ROOT_ID, None, 0, 100), tspan(ROOT_ID, None, 0, 100, trace=TRACE_B), "not json"])
    checker.add([tspan(A_ID, ROOT_ID, 10, 30), tspan(A_ID, "ffffffffffffffff", 10, 30, trace=TRACE_B), '{"span_id": "x"}', "[1]"])
    reports = checker.finish()
    assert [(r.trace_id, r.spans, r.orphans, bool(r.broken)) for r in reports] == [(TRACE, 2, 0, False), (TRACE_B, 2, 1, True)]
    assert checker.unreadable == 3
    assert checker.summary() == "traces: 2 checked, 1 broken (1 orphan span(s)), 3 event(s) without a trace id"


def test_checker_summary_without_unreadable_events():
    checker = TraceChecker()
    checker.add([tspan(ROOT_ID, None, 0, 100)])
    checker.finish()
    assert checker.summary() == "traces: 1 checked, 0 broken (0 orphan span(s))"


def test_checker_evicts_the_oldest_open_trace():
    checker = TraceChecker(max_open=1)
    checker.add([tspan(ROOT_ID, None, 0, 100)])
    assert checker.reports == []
    checker.add([tspan(ROOT_ID, None, 0, 100, trace=TRACE_B)])
    assert [r.trace_id for r in checker.reports] == [TRACE]
    assert [r.trace_id for r in checker.finish()] == [TRACE, TRACE_B]


def _run_script(path: Path, traces: int) -> TraceChecker:
    script = load_script(path)
    checker = TraceChecker()
    for i in range(traces):
        events = script.produce({"timestamp": datetime(2024, 5, 1, 12, 0, i, tzinfo=UTC)})
        for ev in events:  # every span the scripts make can be mapped
            to_span(orjson.loads(ev))
        checker.add(events)
    checker.finish()
    return checker


def test_checker_finds_the_seed_scripts_broken_parent_ids():
    checker = _run_script(ROOT / "tests" / "data" / "seed_tracing.py", 50)
    assert len(checker.reports) == 50
    assert {(r.spans, r.roots, r.orphans, bool(r.broken)) for r in checker.reports} == {(8, 1, 7, True)}
    assert checker.summary() == "traces: 50 checked, 50 broken (350 orphan span(s))"


def test_checker_passes_the_fixed_tracing_example():
    checker = _run_script(ROOT / "examples" / "tracing" / "tracing.py", 50)
    assert len(checker.reports) == 50
    assert {(r.spans, r.roots, r.orphans, r.early, r.late, bool(r.broken)) for r in checker.reports} == {(8, 1, 0, 0, 0, False)}
    assert checker.summary() == "traces: 50 checked, 0 broken (0 orphan span(s))"


# -- edge cases that once crashed or mis-mapped -------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [{"span_id": "00f067aa  0ba902"}, {"trace_id": "4bf92f3577b34da6  a3ce929d0e0e47"}],
    ids=["span_id", "trace_id"],
)
def test_id_with_whitespace_is_rejected(fields):
    with pytest.raises(MappingError):
        to_span(event(**fields))


@pytest.mark.parametrize(
    "fields",
    [
        {"start_time": "1960-01-01T00:00:00Z"},
        {"start_time": "3000-01-01T00:00:00Z"},
        {"start_time": -5},
        {"duration_ms": 1e30},
    ],
    ids=["before-1970", "after-2554", "negative-epoch", "huge-duration"],
)
def test_out_of_range_times_are_mapping_errors(fields):
    with pytest.raises(MappingError):
        to_span(event(**fields))


@pytest.mark.parametrize("fields", [{"attributes": {"n": 2**64 - 1}}, {"n": 2**64 - 1}])
def test_integers_past_int64_keep_their_digits_as_strings(fields):
    _, span = to_span(event(**fields))
    [attribute] = [a for a in span.attributes if a.key == "n"]
    assert attribute.value.string_value == str(2**64 - 1)


def test_encoder_survives_out_of_range_time():
    failed = []
    out = list(otlp_encoder("otlp_proto")([dumps(event(start_time="1960-01-01T00:00:00Z"))], lambda why, ev, detail=None: failed.append(why)))
    assert out == []
    assert len(failed) == 1


@pytest.mark.parametrize(
    "child",
    [{"duration_ms": DROP}, {"duration_ms": "abc"}],
    ids=["no-duration (KeyError)", "non-numeric duration (ValueError)"],
)
def test_checker_survives_a_child_without_a_usable_duration(child):
    [report] = check(tspan(ROOT_ID, None, 0, 100), dumps(event(span_id=A_ID, parent_span_id=ROOT_ID, **child)))
    assert (report.spans, report.roots, report.orphans) == (2, 1, 0)


def test_checker_survives_an_unhashable_trace_id():
    checker = TraceChecker()
    checker.add([dumps(event(trace_id=["x"]))])
    assert checker.unreadable == 1


def test_broken_is_a_bool():
    [report] = check(tspan(ROOT_ID, None, 0, 100), tspan(A_ID, "ffffffffffffffff", 10, 30))
    assert report.broken is True


def test_null_resource_value_is_dropped():
    request = export_request(group_spans([to_span(event(resource={"x": None}))]))
    assert [kv.key for kv in request.resource_spans[0].resource.attributes] == ["service.name"]


def test_resource_keys_are_unique():
    request = export_request(group_spans([to_span(event(resource={"service.name": "other"}))]))
    keys = [kv.key for kv in request.resource_spans[0].resource.attributes]
    assert len(keys) == len(set(keys))


def test_the_short_path_writes_what_the_full_path_writes(monkeypatch):
    """encode_span takes a short path for the common shape; it must equal the full one."""
    full = spans._encode_checked
    fallbacks = []
    monkeypatch.setattr(spans, "_encode_checked", lambda doc, m: fallbacks.append(doc) or full(doc, m))
    script = load_script(ROOT / "examples" / "tracing" / "tracing.py")
    docs = []
    for k in range(200):
        docs += [orjson.loads(s) for s in script.produce({"timestamp": datetime(2026, 1, 1, 0, 0, k % 60, tzinfo=UTC), "tags": ()})]
    docs += [
        event(parent_span_id=None), event(status=DROP), event(duration_ms=5), event(status="ERROR"),
        event(start_time="2026-01-01T00:00:00.5+02:00"), event(trace_id=TRACE.upper()),
    ]
    for doc in docs:
        assert spans.encode_span(doc) == full(doc, DEFAULT_MAPPING)
    # of these, only spans with an error_message take the full path
    assert len(fallbacks) == sum("error_message" in d for d in docs) > 0
