"""OTLP limits: values a span cannot carry, requests over gRPC's 4 MiB and Kafka messages over
message.max.bytes. Each bad event fails alone with a reason from a fixed set; everything
else arrives (read back from the real Jaeger and the real Kafka topic)."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from connector.otlp.codec import otlp_encoder
from connector.otlp.mapping import DEFAULT_MAPPING, MappingError
from connector.otlp.traces import _encode_checked, encode_span
from connector.trace_check import TraceChecker
from tests.harness.fuzz import VALID_SPAN, check_run, read_topics, run_subprocess, write_run

SPAN = {**VALID_SPAN, "trace_id": "0af7651916cd43dd8448eb211c80319c"}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"status": []}, "field 'status' must be OK, ERROR or UNSET"),
        ({"status": {}}, "field 'status' must be OK, ERROR or UNSET"),
        ({"status": {"a": 1}}, "field 'status' must be OK, ERROR or UNSET"),
        ({"duration_ms": 1e303}, "field 'duration_ms' is too large"),
        ({"duration_ms": -1e303}, "the span ends before it starts"),
        ({"start_time": 1e300}, "field 'start_time' is outside what OTLP can carry (1970-2554)"),
        ({"end_time": 1e300}, "field 'end_time' is outside what OTLP can carry (1970-2554)"),
        ({"start_time": 1.9e10}, "field 'start_time' is outside what OTLP can carry (1970-2554)"),
    ],
)
def test_values_a_span_cannot_carry_are_mapping_errors(change, reason):
    doc = orjson.loads(json.dumps({**SPAN, **change}))
    with pytest.raises(MappingError) as caught:
        encode_span(doc)
    assert caught.value.reason == reason  # the value goes only to the detail
    assert caught.value.detail is None or str(next(iter(change.values()))) in caught.value.detail


@pytest.mark.parametrize("status", ["OK", "ERROR"])
@pytest.mark.parametrize("message", [[], {}])
def test_an_empty_error_message_is_no_message(status, message):
    # the short path ignored it, the checked path crashed on it (an unhashable cache key)
    doc = {**SPAN, "status": status, "error_message": message}
    plain = encode_span({**SPAN, "status": status})
    assert encode_span(doc) == _encode_checked(doc, DEFAULT_MAPPING) == plain


def test_the_trace_check_counts_unhashable_ids_as_unreadable():
    trace = SPAN["trace_id"]
    events = [
        json.dumps({"trace_id": trace, "span_id": [1]}),
        json.dumps({"trace_id": trace, "span_id": "a", "parent_span_id": [None]}),
        json.dumps({"trace_id": trace, "span_id": {"x": 1}}),
        json.dumps({"trace_id": [trace], "span_id": "c"}),
        json.dumps({**SPAN, "span_id": "b"}),
    ]
    checker = TraceChecker()
    checker.add(events)
    reports = checker.finish()
    assert checker.unreadable == 4
    assert [(r.spans, r.roots) for r in reports] == [(1, 1)]
    assert "4 event(s) without a trace id" in checker.summary()


def test_the_trace_check_survives_a_parent_without_a_usable_end():
    parent = {**SPAN, "span_id": "a", "duration_ms": 1e303}
    child = {**SPAN, "span_id": "b", "parent_span_id": "a", "duration_ms": 1}
    checker = TraceChecker()
    checker.add([json.dumps(parent), json.dumps(child)])
    (report,) = checker.finish()
    assert (report.spans, report.roots, report.orphans, report.late) == (2, 1, 0, 0)


def _spans_in(payload: bytes, encoding: str) -> int:
    if encoding == "otlp_json":
        doc = json.loads(payload)
        return sum(len(ss["spans"]) for rs in doc["resourceSpans"] for ss in rs["scopeSpans"])
    request = ExportTraceServiceRequest.FromString(payload)
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_the_kafka_encoder_splits_a_trace_over_the_message_limit(encoding):
    trace = uuid.uuid4().hex
    services = ["a", "b", "c"]
    events = [
        json.dumps({**SPAN, "trace_id": trace, "span_id": f"{i + 1:016x}", "pad": "x" * 500,
                    "service": services[i % 3]})
        for i in range(300)
    ]
    events.append(json.dumps({**SPAN, "trace_id": trace, "span_id": "f" * 16, "pad": "y" * 60_000}))
    events.append(json.dumps({**SPAN, "trace_id": uuid.uuid4().hex, "span_id": "e" * 16}))
    failed = []
    out = list(otlp_encoder(encoding, max_bytes=50_000)(
        events, lambda reason, event, detail=None: failed.append((reason, event))))
    assert failed == [("span too large for one message (message.max.bytes)", events[300])]
    ours = [(payload, members) for key, payload, members in out if key == trace]
    assert len(ours) > 3  # 300 spans of ~600 bytes: over 150 KB in messages of 50 KB at most
    for payload, members in ours:
        assert len(payload) <= 50_000
        assert _spans_in(payload, encoding) == len(members)
    assert Counter(e for _, _, m in out for e in m) == Counter(events[:300] + events[301:])
    # most messages are nearly full: the cut is by size, not by halving down to crumbs
    assert len(ours) <= 2 * (sum(len(p) for p, _ in ours) // 50_000 + 1)


def test_a_kafka_trace_over_message_max_bytes_arrives_split(kafka_topic, tmp_path):
    # The producer's own message.max.bytes (here 200,000) is the limit; before, the whole
    # trace failed with MSG_SIZE_TOO_LARGE. A span alone over it fails alone.
    topic = kafka_topic("otlp-limit", partitions=1)
    trace = uuid.uuid4().hex
    events = [json.dumps({**SPAN, "trace_id": trace, "span_id": f"{i + 1:016x}",
                          "pad": "x" * 1000}) for i in range(600)]
    events.insert(7, json.dumps({**SPAN, "trace_id": trace, "span_id": "f" * 16,
                                 "pad": "y" * 300_000}))
    config = write_run(
        tmp_path, events,
        f"kafka: {{bootstrap_servers: '{kafka_topic.bootstrap}', topic: '{topic}', "
        "encoding: otlp_json, dead_letter: dead.jsonl, flush_timeout: 20, "
        "producer: {message.max.bytes: 200000}}",
    )
    run = run_subprocess(["run", str(config), "--quiet"], cwd=tmp_path, timeout=120)
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    delivered, failed, reasons = check_run(run, events, dead)
    assert (delivered, failed) == (600, 1), run.err[-2000:]
    assert reasons == {"span too large for one message (message.max.bytes)": 1}
    assert dead[0]["value"] == events[7]
    records = read_topics(kafka_topic.bootstrap, topic)
    assert len(records) >= 4
    spans = 0
    for _, key, _, value in records:
        assert key == trace.encode() and len(value) <= 200_000
        spans += _spans_in(value, "otlp_json")
    assert spans == 600


def _otlp_run(tmp_path, jaeger, events, batch: str):
    config = write_run(tmp_path, events, f"otlp: {{endpoint: '{jaeger['otlp_grpc']}', "
                       f"dead_letter: dead.jsonl, flush_timeout: 20, batch: {batch}}}")
    run = run_subprocess(["run", str(config), "--quiet"], cwd=tmp_path, timeout=120)
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()] \
        if (tmp_path / "dead.jsonl").exists() else []
    delivered, failed, reasons = check_run(run, events, dead)
    return run, delivered, failed, reasons, dead


def test_batch_max_bytes_keeps_requests_small_and_fails_a_lone_span(jaeger, tmp_path):
    from tests.harness.jaeger import wait_for_trace

    trace = uuid.uuid4().hex
    events = [json.dumps({**SPAN, "trace_id": trace, "span_id": f"{i + 1:016x}",
                          "pad": "x" * 1000}) for i in range(400)]
    events.insert(3, json.dumps({**SPAN, "trace_id": trace, "span_id": "f" * 16,
                                 "pad": "y" * 60_000}))
    run, delivered, failed, reasons, dead = _otlp_run(tmp_path, jaeger, events,
                                                      "{max_bytes: 50000}")
    assert (delivered, failed) == (400, 1), run.err[-2000:]
    assert reasons == {"span too large for one request (batch.max_bytes)": 1}
    assert dead[0]["value"] == events[3]
    assert len(wait_for_trace(jaeger["query"], trace, min_spans=400, timeout=30)) == 400


def test_a_request_over_max_bytes_by_its_resources_is_split(jaeger, tmp_path):
    # Small spans, each with a large resource of its own: the spans' bytes fit one request,
    # the resources do not. The sender halves the request until each part fits; a span
    # whose resource alone is over the limit fails alone.
    from tests.harness.jaeger import wait_for_trace

    trace = uuid.uuid4().hex
    events = [json.dumps({**SPAN, "trace_id": trace, "span_id": f"{i + 1:016x}",
                          "resource": {"r": f"{i}" + "x" * 2000}}) for i in range(100)]
    events.append(json.dumps({**SPAN, "trace_id": trace, "span_id": "f" * 16,
                              "resource": {"r": "y" * 60_000}}))
    run, delivered, failed, reasons, dead = _otlp_run(tmp_path, jaeger, events,
                                                      "{max_bytes: 50000, max_delay: 5}")
    assert (delivered, failed) == (100, 1), run.err[-2000:]
    assert reasons == {"span too large for one request (batch.max_bytes)": 1}
    assert dead[0]["value"] == events[100]
    assert len(wait_for_trace(jaeger["query"], trace, min_spans=100, timeout=30)) == 100


def test_message_larger_than_max_is_not_retried(jaeger, tmp_path):
    # batch.max_bytes set above Jaeger's 4 MiB: the receiver refuses the request with
    # RESOURCE_EXHAUSTED "larger than max", a permanent answer: one attempt, not five.
    events = [json.dumps({**SPAN, "trace_id": uuid.uuid4().hex, "big": "x" * 5_000_000})]
    run, delivered, failed, reasons, _ = _otlp_run(tmp_path, jaeger, events,
                                                   "{max_bytes: 8000000}")
    assert (delivered, failed) == (0, 1), run.err[-2000:]
    assert reasons == {"gRPC RESOURCE_EXHAUSTED (after 1 attempt(s))": 1}, run.err[-2000:]
    assert "retry" not in run.err
