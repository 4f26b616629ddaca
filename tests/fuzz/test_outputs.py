"""Fuzzing events through the outputs: the OTLP span mapping (in-process, and a few runs into
the real Jaeger), and the Kafka output's `{field}` routing into the real broker.

An event that cannot be sent fails alone, with a reason from a small set (never one per
value), and is dead-lettered; nothing crashes; and what arrived (the topic's records read
back, the traces in Jaeger) is exactly what the summary calls delivered.
(file, stdout and null outputs get every kind of event in tests/fuzz/test_script.py.)
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from connector.otlp.codec import otlp_encoder
from connector.otlp.mapping import DEFAULT_MAPPING, MappingError, SpanMapping
from connector.otlp.traces import _encode_checked, encode_span, export_request, group_spans
from connector.trace_check import TraceChecker
from tests.harness.accounts import dead_values
from tests.harness.fuzz import (
    VALID_SPAN,
    Run,
    check_run,
    event_text,
    json_values,
    odd_text,
    read_topics,
    run_subprocess,
    write_run,
)
from tests.harness.hypothesis_profiles import budget

# -- span JSON ------------------------------------------------------------------------------

def _nonzero(size: int) -> st.SearchStrategy[str]:
    # all zeros is an invalid id: keep most drawn spans valid, the odd values cover zeros
    return st.binary(min_size=size, max_size=size).map(lambda b: (b"\x01" + b[1:]).hex())


trace_ids, span_ids = _nonzero(16), _nonzero(8)

ODD_FIELD_VALUES = {
    "trace_id": ["0" * 32, "F" * 32, "g" * 32, "\u0660" * 32, " " + "a" * 31, "a" * 31, "a" * 33, ""],
    "span_id": ["0" * 16, "A" * 16, "z" * 16, "a" * 15, "\u0661" * 16, ""],
    "parent_span_id": ["", "0" * 16, "a" * 17, None],
    "start_time": ["2026-02-30T00:00:00Z", "0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z",
                   "9999-12-31T23:59:59-14:00", "2026-02-20T10:00:00", "2026-02-20", "now", "",
                   "2554-07-21T23:34:33Z", 1e300, -1, 1.5e9, 2**70],
    "end_time": ["2026-02-20T09:00:00Z", "2026-02-20T10:00:00.000001Z", 1e300, 0],
    "duration_ms": [1e303, -1e303, -1, 0, 2**64, 1e16, 0.0000001, "5", True],
    "status": ["ok", "STATUS_CODE_ERROR", "error", "weird", 1, [], {}, True, ""],
    "kind": ["server", "SPAN_KIND_CLIENT", "UNSPECIFIED", 3, [], {}, "x" * 300, ""],
    "attributes": [[], "a", {"a": {"b": [1, None, {"c": 2**70}]}}, {"": None}, {"x": 1e308}],
    "resource": [[], "a", {"service.name": "other"}, {"a": [1, 2]}, {"k": None}],
    "error_message": [["a"], {"a": 1}, 0, "x" * 1000, True],
    "service": ["", 1, None, ["s"], "é\x00"],
    "operation": ["", 2, None, {"o": 1}, "\u2028"],
}


@st.composite
def span_docs(draw) -> dict:
    """A span event shaped like the seed's, then with fields removed, replaced by odd or
    wrong-typed values, and extra fields added."""
    doc = {
        "trace_id": draw(trace_ids), "span_id": draw(span_ids),
        "parent_span_id": draw(st.none() | span_ids),
        "service": draw(st.sampled_from(["checkout", "db"]) | st.text(min_size=1, max_size=8)),
        "operation": draw(st.sampled_from(["GET /", "query"]) | st.text(min_size=1, max_size=8)),
        "start_time": "2026-02-20T10:00:00.123456+00:00",
        "duration_ms": draw(st.floats(0, 1e6) | st.integers(0, 10**6)),
        "status": draw(st.sampled_from(["OK", "ERROR", "UNSET"])),
    }
    for _ in range(draw(st.integers(0, 4))):
        field = draw(st.sampled_from(sorted(ODD_FIELD_VALUES)))
        how = draw(st.sampled_from(["odd", "any", "delete", "extra"]))
        if how == "odd":
            doc[field] = draw(st.sampled_from(ODD_FIELD_VALUES[field]))
        elif how == "any":
            doc[field] = draw(json_values)
        elif how == "delete":
            doc.pop(field, None)
        else:
            doc[draw(st.text(max_size=6))] = draw(json_values)
    return doc


mappings = st.one_of(
    st.just(DEFAULT_MAPPING),
    st.builds(lambda a, b: SpanMapping(**{a: b}),
              st.sampled_from(sorted(SpanMapping.model_fields)),
              st.sampled_from(["trace_id", "span_id", "service", "x", "traceId"])),
)


def as_event(doc) -> str:
    """The event text a script would return: JSON (big integers stay digits)."""
    return json.dumps(doc)


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def assert_bounded(reason: str, doc, mapping: SpanMapping) -> None:
    """A failure reason names fields and rules, never the event's values."""
    names = set(mapping.model_dump().values())
    for text in _strings(doc):
        if len(text) >= 8 and text not in names:
            assert text not in reason, (reason, text)
    assert len(reason) <= 120, reason


_SPAN = {"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331",
         "service": "s", "operation": "o", "start_time": "2026-02-20T10:00:00Z", "duration_ms": 5}


@budget(1500)
@given(span_docs() | json_values, mappings)
# counterexamples found: each ended in TypeError or OverflowError instead of MappingError
@example({**_SPAN, "status": []}, DEFAULT_MAPPING)  # unhashable status
@example({**_SPAN, "status": {}}, DEFAULT_MAPPING)
@example({**_SPAN, "status": "OK", "error_message": []}, DEFAULT_MAPPING)  # lru_cache key
@example({**_SPAN, "duration_ms": 1e303}, DEFAULT_MAPPING)  # round(inf)
@example({**_SPAN, "duration_ms": -1e303}, DEFAULT_MAPPING)
@example({**_SPAN, "start_time": 1e300}, DEFAULT_MAPPING)  # int(inf) in _nanos
@example({**_SPAN, "end_time": 1e300}, DEFAULT_MAPPING)
def test_a_span_event_maps_or_fails_with_a_mapping_error(doc, mapping):
    try:
        doc = orjson.loads(as_event(doc))
    except orjson.JSONDecodeError:
        return  # an integer orjson does not read: the outputs fail it as not JSON
    try:
        key, trace_id, span = encode_span(doc, mapping)
    except MappingError as exc:
        assert_bounded(exc.reason, doc, mapping)
        # the short path and the checked path agree on what is refused
        with pytest.raises(MappingError):
            _encode_checked(doc, mapping)
        return
    # accepted: both paths give the same bytes, and they are a Span OTLP can read
    assert _encode_checked(doc, mapping) == (key, trace_id, span)
    request = ExportTraceServiceRequest.FromString(export_request(group_spans([(key, trace_id,
                                                                                span)])))
    got = request.resource_spans[0].scope_spans[0].spans[0]
    assert got.trace_id == bytes.fromhex(doc[mapping.trace_id]) == trace_id
    assert got.name == doc[mapping.operation]
    assert got.end_time_unix_nano >= got.start_time_unix_nano


@budget(300)
@given(
    st.lists(span_docs().map(as_event) | st.text(max_size=10)
             | json_values.map(as_event), max_size=12),
    st.sampled_from(["otlp_proto", "otlp_json"]),
)
@example([as_event({**_SPAN, "status": []}), as_event(_SPAN)], "otlp_proto")  # TypeError
@example([as_event({**_SPAN, "duration_ms": 1e303}), as_event(_SPAN)], "otlp_json")
def test_the_kafka_otlp_encoder_accounts_for_every_event(events, encoding):
    failed: list[tuple[str, str]] = []
    sent: list[str] = []
    encode = otlp_encoder(encoding)
    for trace_hex, payload, members in encode(events, lambda r, e, detail=None, **_: failed.append(
            (r, e))):
        assert len(trace_hex) == 32 and payload
        if encoding == "otlp_proto":
            ExportTraceServiceRequest.FromString(payload)
        else:
            json.loads(payload)
        sent += members
    assert Counter(sent) + Counter(e for _, e in failed) == Counter(events)


@budget(300)
@given(st.lists(span_docs().map(as_event) | json_values.map(as_event), max_size=12), mappings)
@example(['{"trace_id": "t", "span_id": [1]}', '{"trace_id": "t", "span_id": "a", '
          '"parent_span_id": [1]}'], DEFAULT_MAPPING)  # unhashable ids
@example(['{"trace_id": "t", "span_id": "a", "start_time": "2026-02-20T10:00:00Z", '
          '"duration_ms": 1e303}', '{"trace_id": "t", "span_id": "b", "parent_span_id": "a", '
          '"start_time": "2026-02-20T10:00:00Z", "duration_ms": 1}'], DEFAULT_MAPPING)
def test_the_trace_check_never_crashes(events, mapping):
    # check_traces and `preview --check-traces` read any event the script returns
    checker = TraceChecker(mapping)
    checker.add(events)
    reports = checker.finish()
    assert sum(r.spans for r in reports) + checker.unreadable == len(events)
    checker.summary()


# -- through the CLI ------------------------------------------------------------------------

# -- kafka routing ----------------------------------------------------------------------------

POOL = ["alpha", "beta"]  # topic suffixes made up front: events routed there must arrive
MISSING = object()

route_values = st.one_of(
    st.sampled_from(POOL), st.sampled_from(POOL),
    st.just(MISSING), st.none(),
    st.sampled_from([0, -1, True, 1.5, [1], {"a": 1}, "a/b", "a b", " ", "x" * 300, "é",
                     "a\nb", "..", "", "$", "a" * 249]),
    st.text(max_size=6),
)


@st.composite
def routed_events(draw) -> list[str]:
    events = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["doc", "doc", "doc", "doc", "raw"]))
        if kind == "raw":
            events.append(draw(st.sampled_from(["not json", "[1]", "null", '"s"', "", "{"])
                               | st.text(max_size=6)))
            continue
        doc = {"n": len(events)}
        for name in ("t", "k", "h"):
            value = draw(route_values)
            if value is not MISSING:
                doc[name] = value
        events.append(json.dumps(doc))
    return events


def _text(value) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _doc(event: str) -> dict:
    try:
        doc = json.loads(event)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def clean_route(event: str) -> bool:
    """An event the routing must deliver: topic from the pool, key and header present."""
    try:
        doc = json.loads(event)
    except ValueError:
        return False
    if not isinstance(doc, dict):
        return False
    return doc.get("t") in POOL and all(doc.get(f) is not None for f in ("k", "h"))


def must_fail(event: str) -> bool:
    """An event the routing cannot send: not a JSON object, or a field missing or null."""
    try:
        doc = json.loads(event)
    except ValueError:
        return True
    return not isinstance(doc, dict) or any(doc.get(f) is None for f in ("t", "k", "h"))


@budget(5)
@given(routed_events())
@example([json.dumps({"n": 0, "t": "alpha", "k": "x", "h": "y"}),
          json.dumps({"n": 1, "t": "a/b", "k": "x", "h": "y"}),
          json.dumps({"n": 2, "t": "x" * 300, "k": "x", "h": "y"}),
          json.dumps({"n": 3, "t": "a b", "k": "x", "h": "y"}),
          json.dumps({"n": 4, "t": "alpha", "k": None, "h": "y"}),
          json.dumps({"n": 5, "k": "x", "h": "y"}),
          json.dumps({"n": 6, "t": 7, "k": [1], "h": {"a": 1}}),
          json.dumps({"n": 7, "t": "beta", "k": "x" * 300, "h": "é/ \u2028"}),
          "not json"])
def test_kafka_routing_fails_alone_and_the_topic_holds_the_rest(kafka_topic, tmp_path_factory,
                                                                 events):
    from tests.harness.kafka import create_topic, delete, topics

    bootstrap = kafka_topic.bootstrap
    prefix = f"{kafka_topic.prefix}{uuid.uuid4().hex[:6]}-"
    folder = tmp_path_factory.mktemp("kafka")
    try:
        for name in POOL:
            create_topic(bootstrap, prefix + name, 2)
        config = write_run(
            folder, events,
            f"kafka: {{bootstrap_servers: '{bootstrap}', topic: '{prefix}{{t}}', key: k, "
            "headers: {h: '{h}', fixed: 'f'}, dead_letter: dead.jsonl, flush_timeout: 20, "
            "connect_timeout: 20, producer: {topic.metadata.propagation.max.ms: 5000}}",
        )
        run = run_subprocess(["run", str(config), "--quiet"], cwd=folder, timeout=120)
        dead = dead_values(folder / "dead.jsonl")
        delivered, _, reasons = check_run(run, events, dead)
        records = read_topics(bootstrap, prefix)
        assert len(records) == delivered, (len(records), delivered, run.err[-3000:])
        got = Counter(value.decode() for *_, value in records)
        assert got + Counter(dead) == Counter(events), (got, dead)
        for topic, key, headers, value in records:  # routed as the event's fields say
            doc = json.loads(value)
            assert topic == prefix + _text(doc["t"])
            assert key == _text(doc["k"]).encode()
            assert headers == {"h": _text(doc["h"]).encode(), "fixed": b"f"}
        values = {v for e in events for v in _doc(e).values()
                  if isinstance(v, str) and len(v) >= 4 and v not in POOL}
        for reason in reasons:  # never an event's value in a reason (a metric label)
            assert not [v for v in values if v in reason], reason
        for event in events:
            if clean_route(event):
                assert event in got, (event, reasons)
            if must_fail(event):
                assert event in dead, (event, reasons)
    finally:
        delete(bootstrap, {t for t in topics(bootstrap) if t.startswith(prefix)})


@budget(3)
@given(st.lists(event_text | odd_text, min_size=1, max_size=30))
@example(["a", "\udcff", "", "b\x00c", "x" * 300, "d\ne", "y" * 2_000_000, "z"])
def test_kafka_raw_events_fail_alone(kafka_topic, tmp_path_factory, events):
    bootstrap = kafka_topic.bootstrap
    topic = kafka_topic("raw", partitions=1)
    folder = tmp_path_factory.mktemp("kafka")
    config = write_run(
        folder, events,
        f"kafka: {{bootstrap_servers: '{bootstrap}', topic: '{topic}', "
        "dead_letter: dead.jsonl, flush_timeout: 20, connect_timeout: 20}",
    )
    run = run_subprocess(["run", str(config), "--quiet"], cwd=folder, timeout=120)
    dead = dead_values(folder / "dead.jsonl")
    delivered, _, reasons = check_run(run, events, dead)
    records = read_topics(bootstrap, topic)
    assert len(records) == delivered
    got = [value.decode() for *_, value in records]  # one partition: in order
    assert Counter(got) + Counter(dead) == Counter(events), (got, dead)
    # every event Kafka can carry (UTF-8, under message.max.bytes) arrives, in order
    encodable = [e for e in events if _encodable(e) and len(e.encode()) < 1_000_000]
    assert got == encodable, reasons
    from tests.harness.kafka import delete

    delete(bootstrap, {topic})


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def test_a_trace_over_the_kafka_message_limit_is_delivered(kafka_topic, tmp_path):
    # otlp_proto writes one message per trace: 2,000 spans of about 1 KB are a 2 MB
    # message, over the producer's 1 MB message.max.bytes. Before: "delivered 0, failed
    # 2000" (MSG_SIZE_TOO_LARGE) with no bad event among them. A trace must be split over
    # several messages (same key: same partition, in order) rather than lost.
    topic = kafka_topic("otlp", partitions=1)
    trace = uuid.uuid4().hex
    events = [json.dumps({**VALID_SPAN, "trace_id": trace, "span_id": f"{i + 1:016x}",
                          "pad": "x" * 1000}) for i in range(2000)]
    config = write_run(
        tmp_path, events,
        f"kafka: {{bootstrap_servers: '{kafka_topic.bootstrap}', topic: '{topic}', "
        "encoding: otlp_proto, dead_letter: dead.jsonl, flush_timeout: 20}",
    )
    run = run_subprocess(["run", str(config), "--quiet"], cwd=tmp_path, timeout=120)
    delivered, failed, _ = check_run(run, events, dead_values(tmp_path / "dead.jsonl"))
    assert (delivered, failed) == (2000, 0), run.err[-2000:]
    spans = 0
    for _, key, _, value in read_topics(kafka_topic.bootstrap, topic):
        assert key == trace.encode()
        request = ExportTraceServiceRequest.FromString(value)
        spans += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    assert spans == 2000


# -- otlp into Jaeger ---------------------------------------------------------------------------


@budget(3)
@given(st.lists(span_docs(), min_size=1, max_size=15), st.sampled_from(["grpc", "http"]))
@example([VALID_SPAN, {**VALID_SPAN, "span_id": "b7ad6b7169203332", "duration_ms": 1e303},
          {**VALID_SPAN, "span_id": "b7ad6b7169203333", "status": []},
          {**VALID_SPAN, "span_id": "b7ad6b7169203334", "start_time": 1e300},
          {**VALID_SPAN, "span_id": "b7ad6b7169203335", "error_message": []},
          {**VALID_SPAN, "span_id": "b7ad6b7169203336", "parent_span_id": "b7ad6b7169203331"}],
         "grpc")  # one unmappable span broke the output for the whole run
def test_otlp_sends_what_maps_and_fails_the_rest_alone(jaeger, tmp_path_factory, docs, protocol):
    from tests.harness.jaeger import get_trace

    marker = uuid.uuid4().hex[:8]
    events, mappable = [], Counter()
    run_trace = f"{uuid.uuid4().int & (2**128 - 1) | 1:032x}"
    for i, doc in enumerate(docs):
        doc = {**doc, "service": f"fuzz-{marker}", "n": i}  # one service: ours alone
        if doc.get("trace_id") == VALID_SPAN["trace_id"]:
            doc["trace_id"] = run_trace  # the explicit example runs once per test run
        event = as_event(doc)
        events.append(event)
        try:
            _, trace_id, _ = encode_span(orjson.loads(event))
        except Exception:  # MappingError, not JSON; anything else is a defect that must
            continue  # still fail this event alone
        mappable[trace_id.hex()] += 1
    folder = tmp_path_factory.mktemp("otlp")
    endpoint = jaeger["otlp_grpc"] if protocol == "grpc" else jaeger["otlp_http"]
    wire = "grpc" if protocol == "grpc" else "http/protobuf"
    config = write_run(
        folder, events,
        f"otlp: {{endpoint: '{endpoint}', protocol: {wire}, "
        "dead_letter: dead.jsonl, flush_timeout: 20, batch: {max_delay: 0.05}}",
    )
    run = run_subprocess(["run", str(config), "--quiet"], cwd=folder, timeout=120)
    dead = dead_values(folder / "dead.jsonl")
    delivered, _, _ = check_run(run, events, dead)
    assert delivered == sum(mappable.values()), (delivered, mappable, run.err[-3000:])
    assert Counter(dead) + Counter(e for e in events if e not in dead) == Counter(events)
    # Jaeger holds every delivered span of every trace
    for trace, n in mappable.items():
        deadline = time.monotonic() + 15
        while True:
            spans = [s for s in get_trace(jaeger["query"], trace)
                     if s["process"]["serviceName"] == f"fuzz-{marker}"]
            if len(spans) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(spans) == n, (trace, len(spans), n, run.err[-2000:])


def test_one_oversized_span_fails_alone(jaeger, tmp_path):
    # A 5 MB span is over gRPC's 4 MiB message limit at the receiver: it fails, alone; the
    # spans batched with it are delivered (all six failed, after five retries, before).
    from tests.harness.jaeger import wait_for_trace

    trace = uuid.uuid4().hex
    events = [json.dumps({**VALID_SPAN, "trace_id": trace, "span_id": f"{i + 1:016x}",
                          "big": "x" * 5_000_000 if i == 2 else ""}) for i in range(6)]
    config = write_run(tmp_path, events, f"otlp: {{endpoint: '{jaeger['otlp_grpc']}', "
                       "dead_letter: dead.jsonl, flush_timeout: 20}")
    run = run_subprocess(["run", str(config), "--quiet"], cwd=tmp_path, timeout=120)
    dead = dead_values(tmp_path / "dead.jsonl")
    delivered, failed, _ = check_run(run, events, dead)
    assert (delivered, failed) == (5, 1), run.err[-2000:]
    assert dead == [events[2]]
    assert len(wait_for_trace(jaeger["query"], trace, min_spans=5)) == 5


def test_a_batch_over_the_grpc_message_limit_is_delivered(jaeger, tmp_path):
    # 5,000 ordinary spans of about 1 KB: one batch (max_spans 8192) is a 5.4 MB request,
    # over the receiver's 4 MiB. Before: "delivered 0, failed 5000", RESOURCE_EXHAUSTED
    # retried five times. The output must keep each request under the limit.
    from tests.harness.jaeger import wait_for_trace

    trace = uuid.uuid4().hex
    events = [json.dumps({**VALID_SPAN, "trace_id": trace, "span_id": f"{i + 1:016x}",
                          "pad": "x" * 1000}) for i in range(5000)]
    config = write_run(tmp_path, events, f"otlp: {{endpoint: '{jaeger['otlp_grpc']}', "
                       "dead_letter: dead.jsonl, flush_timeout: 20}")
    run = run_subprocess(["run", str(config), "--quiet"], cwd=tmp_path, timeout=120)
    delivered, failed, _ = check_run(run, events, dead_values(tmp_path / "dead.jsonl"))
    assert (delivered, failed) == (5000, 0), run.err[-2000:]
    assert len(wait_for_trace(jaeger["query"], trace, min_spans=5000, timeout=30)) == 5000


def test_otlp_reasons_are_a_small_set(jaeger, tmp_path):
    # 300 events, each failing for a value of its own: the reasons stay few
    events = [json.dumps({"trace_id": f"{i:x}" * 3, "span_id": "z" * i}) for i in range(300)]
    config = write_run(tmp_path, events, f"otlp: {{endpoint: '{jaeger['otlp_grpc']}', "
                       "dead_letter: dead.jsonl, flush_timeout: 5}")
    run = run_subprocess(["run", str(config), "--quiet"], cwd=tmp_path, timeout=60)
    _, failed, reasons = check_run(run, events, dead_values(tmp_path / "dead.jsonl"))
    assert failed == 300
    assert all(not re.search(r"[0-9a-f]{6,}", r) for r in reasons), reasons


# -- a dead letter that cannot be written ---------------------------------------------------


@pytest.mark.parametrize(
    "dead_letter",
    ["afile/dead.jsonl",  # under a regular file
     "adir",  # a directory
     "/dev/full"],  # every write fails with "No space left on device"
)
def test_an_unwritable_dead_letter_never_ends_the_run(tmp_path, dead_letter):
    # Refused by validate (exit 2), or the run keeps its accounts and prints its summary.
    # Before: "output broke, a bug", then a traceback from settle() and no summary at all.
    from tests.harness.fuzz import run_forked

    (tmp_path / "afile").write_text("")
    (tmp_path / "adir").mkdir()
    events = ["a", "b\nc", "\udcff", "d"]
    config = write_run(tmp_path, events, f"file: {{path: out.txt, dead_letter: {dead_letter}}}")
    run = run_forked(["run", str(config), "--quiet"], cwd=tmp_path, timeout=60)
    assert run.code in (1, 2), run.err
    assert not run.traceback, run.err
    if run.code == 2:
        assert "dead_letter" in run.err, run.err
        return
    s = run.summary()
    assert s.printed, run.err
    o = s.outputs["o"]
    assert (o.delivered, o.failed) == (2, 2), run.err
    assert (tmp_path / "out.txt").read_text() == "a\nd\n"


# -- stdout into a pipe, from several workers --------------------------------------------------


def test_stdout_lines_stay_whole_in_a_pipe_under_workers(tmp_path):
    # `connector run --workers 2 | consumer`: a pipe takes writes of up to PIPE_BUF (4 KiB)
    # whole; longer ones from two processes interleave. Before: 375 of 400 lines of 100 KB
    # torn, and the summary said "delivered 400".
    import subprocess
    import sys

    (tmp_path / "produce.py").write_text(
        "import os\n\n\ndef produce(params):\n    tag = str(os.getpid())\n"
        "    return [f'{tag}:{i}:' + 'x' * 100_000 + f':{tag}' for i in range(20)]\n"
    )
    config = tmp_path / "c.yaml"
    config.write_text(
        "mode: backfill\nmetrics: {port: 0}\ninput:\n  - cron: {expression: '* * * * * *', "
        "start: '2026-02-20T10:00:00+00:00', end: '2026-02-20T10:00:20+00:00'}\n"
        "event: {script: {path: produce.py}}\noutput:\n  - name: o\n    stdout: {}\n"
    )
    proc = subprocess.run(  # stdout is a pipe here, as for `| consumer`
        [sys.executable, "-m", "connector", "run", str(config), "--quiet", "--workers", "2"],
        capture_output=True, timeout=120, cwd=tmp_path,
    )
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0 and "Traceback" not in err, err
    s = Run(proc.returncode, proc.stdout, err, 0, 0).summary()
    lines = proc.stdout.split(b"\n")[:-1]
    assert len(lines) == s.outputs["o"].delivered == 400
    torn = [ln[:40] for ln in lines
            if not re.fullmatch(rb"(\d+):\d+:x{100000}:\1", ln)]
    assert not torn, f"{len(torn)} of 400 lines torn: {torn[:3]}"
