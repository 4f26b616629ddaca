"""The otlp output against a real Jaeger, and OTLP-encoded Kafka messages."""

import json
import random
import time
from collections import defaultdict

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.harness.cli import EXAMPLES, run_cli
from tests.harness.jaeger import tags, wait_for_trace

TRACING = EXAMPLES / "tracing" / "tracing.py"


def tracing_config(write, outputs: str, window: str = 'start: "-20m", end: "now"') -> str:
    return write("c.yaml", f"""
        mode: backfill
        input: [{{cron: {{expression: "*/2 * * * * *", {window}}}}}]
        event: {{script: {{path: {TRACING}}}}}
        output:
        {outputs}
          - file: {{path: spans.jsonl, mode: overwrite}}
        """)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_traces_arrive_whole_in_jaeger(jaeger, write, tmp_path, protocol):
    endpoint = jaeger["otlp_grpc"] if protocol == "grpc" else jaeger["otlp_http"]
    config = tracing_config(write, f"  - otlp: {{endpoint: '{endpoint}', protocol: {protocol}}}")
    result = run_cli("run", config, "--seed", "5")
    assert result.code == 0, result.stderr
    summary = result.summary("otlp-0")
    assert summary["delivered"] == summary["produced"] == 600 * 8 and summary["failed"] == 0

    sent = defaultdict(dict)
    for line in (tmp_path / "spans.jsonl").read_text().splitlines():
        span = json.loads(line)
        sent[span["trace_id"]][span["span_id"]] = span
    errored = [t for t, spans in sent.items() if any(s["status"] == "ERROR" for s in spans.values())]
    sample = random.Random(1).sample(sorted(sent), 20) + errored[:5]
    for trace_id in sample:
        got = wait_for_trace(jaeger["query"], trace_id, min_spans=8)
        assert len(got) == 8
        by_id = {s["spanID"]: s for s in got}
        roots = [s for s in got if not s["references"]]
        assert [r["process"]["serviceName"] for r in roots] == ["api-gateway"]
        for s in got:
            mine = sent[trace_id][s["spanID"]]
            assert s["process"]["serviceName"] == mine["service"]
            assert s["operationName"] == mine["operation"]
            assert s["duration"] == round(mine["duration_ms"] * 1000)
            status = tags(s).get("otel.status_code")
            assert status == mine["status"]
            if mine["status"] == "ERROR":
                assert tags(s)["otel.status_description"] == mine["error_message"]
                assert s["logs"] and s["logs"][0]["fields"][0]["value"] == "exception"
            for ref in s["references"]:
                assert ref["refType"] == "CHILD_OF"
                parent = by_id[ref["spanID"]]  # every parent reference resolves
                assert parent["startTime"] <= s["startTime"]
                assert s["startTime"] + s["duration"] <= parent["startTime"] + parent["duration"]


def test_endpoint_unavailable_retries_then_fails_and_dead_letters(write, tmp_path):
    """An endpoint that answers 503 to every export (it is reachable, so start() passes)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Unavailable(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    config = tracing_config(write, f"""  - otlp:
              endpoint: {endpoint}
              protocol: http/protobuf
              retry: {{attempts: 3, initial_backoff: 0.05}}
              flush_timeout: 5
              dead_letter: dead.jsonl""", window='start: "-1m", end: "now"')
    started = time.monotonic()
    try:
        result = run_cli("run", config, timeout=60)
    finally:
        server.shutdown()
    assert time.monotonic() - started < 20
    assert result.code == 1
    summary = result.summary("otlp-0")
    assert summary["failed"] == summary["produced"] == 240 and summary["delivered"] == 0
    assert "after 3 attempt(s)" in result.stderr and "retry 1/2" in result.stderr
    dead = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(dead) == 240 and {d["endpoint"] for d in dead} == {endpoint}
    assert json.loads(dead[0]["value"])["trace_id"]


def test_unmappable_events_are_counted_failures(jaeger, write, tmp_path):
    write("s.py", """
        import json
        def produce(p):
            ok = {'trace_id': 'ab' * 16, 'span_id': 'cd' * 8, 'service': 's', 'operation': 'op',
                  'start_time': p['timestamp'].isoformat(), 'duration_ms': 1}
            return [json.dumps(ok), 'not json', json.dumps({**ok, 'span_id': 'xyz'})]
        """)
    config = write("c.yaml", f"""
        mode: backfill
        input: [{{rate: {{per_second: 1, start: "-2s", end: "now"}}}}]
        event: {{script: {{path: s.py}}}}
        output: [{{otlp: {{endpoint: '{jaeger["otlp_grpc"]}', dead_letter: dead.jsonl}}}}]
        """)
    result = run_cli("run", config)
    assert result.code == 1
    summary = result.summary("otlp-0")
    assert summary.pop("filtered", 0) == 0  # shown only for an output with a `when` rule
    assert summary == {"timestamps": 2, "produced": 6, "script_errors": 0, "delivered": 2,
                       "failed": 4}
    # the summary counts by a bounded reason; the offending value is in the dead letter
    assert "cannot map to a span: field 'span_id' must be 16 hex characters: 2" in result.stderr
    dead = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(dead) == 4
    assert "cannot map to a span: field 'span_id' must be 16 hex characters: got 'xyz'" in {d["error"] for d in dead}


def test_kafka_otlp_proto_encoding(kafka_bootstrap, kafka_topic, write, tmp_path):
    from tests.harness.kafka import read_topic

    topic = kafka_topic("otlp")
    config = tracing_config(
        write, f"  - kafka: {{bootstrap_servers: '{kafka_bootstrap}', topic: {topic}, encoding: otlp_proto}}",
        window='start: "-1m", end: "now"')
    result = run_cli("run", config)
    assert result.code == 0, result.stderr
    assert result.summary("kafka-0")["delivered"] == 240
    messages = read_topic(kafka_bootstrap, [topic])
    assert len(messages) == 30  # one message per trace
    for m in messages:
        request = ExportTraceServiceRequest.FromString(m.value())
        spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        services = {a.value.string_value for rs in request.resource_spans
                    for a in rs.resource.attributes if a.key == "service.name"}
        assert len(spans) == 8 and len(services) == 8
        assert {s.trace_id.hex() for s in spans} == {m.key().decode()}
        ids = {s.span_id for s in spans}
        assert all(s.parent_span_id in ids for s in spans if s.parent_span_id)


def test_check_traces_tells_broken_from_clean(write):
    seed = EXAMPLES.parent / "tests" / "data" / "seed_tracing.py"
    for script, code, verdict in ((seed, 1, "7 orphan(s)"), (TRACING, 0, "0 orphan(s)")):
        config = write("c.yaml", f"""
            input: [{{cron: {{expression: "*/2 * * * * *"}}}}]
            event: {{script: {{path: {script}}}}}
            """)
        result = run_cli("preview", config, "--check-traces", "--events", "40")
        assert result.code == code
        reports = [line for line in result.lines if line.startswith("trace ")]
        assert len(reports) == 5 and all(verdict in r for r in reports)
        assert result.lines[-1] == f"traces: 5 checked, {5 if code else 0} broken ({35 if code else 0} orphan span(s))"


def test_check_traces_on_a_run(write):
    seed = EXAMPLES.parent / "tests" / "data" / "seed_tracing.py"
    config = write("c.yaml", f"""
        mode: backfill
        check_traces: true
        input: [{{cron: {{expression: "*/2 * * * * *", start: "-1m", end: "now"}}}}]
        event: {{script: {{path: {seed}}}}}
        output: [{{null: {{}}}}]
        """)
    result = run_cli("run", config)
    assert result.code == 0
    assert "traces: 30 checked, 30 broken (210 orphan span(s))" in result.stderr


def test_kafka_otlp_encoding_refuses_per_event_routing(write):
    config = write("c.yaml", f"""
        input: [{{rate: {{per_second: 1}}}}]
        event: {{script: {{path: {TRACING}}}}}
        output: [{{kafka: {{bootstrap_servers: x, topic: "t.{{service}}", encoding: otlp_proto}}}}]
        """)
    result = run_cli("validate", config)
    assert result.code == 2 and "writes one message per trace" in result.stderr


def test_an_endpoint_that_answers_nonsense_does_not_stall_the_run(write):
    """A 2xx whose body is not OTLP (a proxy page) is taken as accepted; a 500 fails the batch."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            code = 200 if "ok" in self.path else 500
            self.send_response(code)
            self.send_header("Content-Length", "13")
            self.end_headers()
            self.wfile.write(b"<html>hi</html>"[:13])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        config = tracing_config(write, f"""  - otlp: {{endpoint: 'http://127.0.0.1:{port}/ok', protocol: http/protobuf}}
          - otlp: {{endpoint: 'http://127.0.0.1:{port}/bad', protocol: http/protobuf, retry: {{attempts: 1}}}}""",
            window='start: "-1m", end: "now"')
        result = run_cli("run", config, timeout=60)
    finally:
        server.shutdown()
    assert result.code == 1
    assert result.summary("otlp-0")["delivered"] == 240
    assert result.summary("otlp-1")["failed"] == 240
    assert "HTTP 500 (after 1 attempt(s)): 240" in result.stderr


def test_check_traces_reads_the_outputs_field_names(write):
    write("s.py", """
        import json
        def produce(p):
            t = p['timestamp'].isoformat()
            root = {'tid': 'ab' * 16, 'sid': '01' * 8, 'svc': 'a', 'operation': 'op', 'start_time': t, 'duration_ms': 5}
            child = {**root, 'sid': '02' * 8, 'pid': '01' * 8, 'duration_ms': 1}
            return [json.dumps(root), json.dumps(child)]
        """)
    config = write("c.yaml", """
        input: [{rate: {per_second: 1}}]
        event: {script: {path: s.py}}
        output: [{otlp: {endpoint: '127.0.0.1:9', mapping: {trace_id: tid, span_id: sid, parent_span_id: pid, service: svc}}}]
        """)
    result = run_cli("preview", config, "--check-traces", "--events", "2")
    assert result.code == 0, result.stdout
    assert result.lines == [f"trace {'ab' * 16}: 2 spans, 1 root(s), 0 orphan(s), 0 start before parent, 0 end after parent: ok",
                            "traces: 1 checked, 0 broken (0 orphan span(s))"]
