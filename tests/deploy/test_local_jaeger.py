"""Test of the test infrastructure: one span over OTLP HTTP/protobuf, read back from Jaeger."""

import os
import time
import urllib.request

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tests.harness.jaeger import get_trace, jaeger_endpoints, tags, wait_for_trace


def attr(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def test_span_round_trip_over_otlp_http():
    ep = jaeger_endpoints()
    trace_id, span_id, now = os.urandom(16), os.urandom(8), time.time_ns()
    span = Span(
        trace_id=trace_id,
        span_id=span_id,
        name="publish",
        kind=Span.SPAN_KIND_PRODUCER,
        start_time_unix_nano=now - 2_000_000,
        end_time_unix_nano=now,
        attributes=[attr("topic", "events")],
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
    )
    resource = Resource(attributes=[attr("service.name", "jaeger-selftest")])
    body = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=[span])])]
    )
    req = urllib.request.Request(
        f"{ep['otlp_http']}/v1/traces",
        data=body.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as r:
        assert r.status == 200

    [got] = wait_for_trace(ep["query"], trace_id)
    assert (got["traceID"], got["spanID"]) == (trace_id.hex(), span_id.hex())
    assert (got["operationName"], got["duration"]) == ("publish", 2000)  # microseconds
    assert got["process"]["serviceName"] == "jaeger-selftest"
    assert tags(got) == {
        "topic": "events",
        "span.kind": "producer",
        "error": True,
        "otel.status_code": "ERROR",
        "otel.status_description": "boom",
    }
    assert get_trace(ep["query"], os.urandom(16)) == []
