"""examples/correlated end to end through a real Collector: spans routed by `when` into Jaeger
storage (every trace whole, the batch span's link and event there), log lines routed into
the Collector's logs pipeline and read back from its kafka exporter with the ids of their
spans; exact accounts per output (delivered + failed + filtered == produced)."""

import json
import os
from collections import Counter

import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tests.harness.cli import EXAMPLES, run_cli
from tests.harness.jaeger import get_trace, tags
from tests.harness.otlp import SEVERITY, attrs, nanos, py, read_requests

CORRELATED = EXAMPLES / "correlated"


def test_the_correlated_example_lands_whole_in_jaeger_and_its_logs_join_their_spans(
    kafka_bootstrap, kafka_topic, collector, write, tmp_path
):
    out_topic = kafka_topic("logs-out")
    c = collector()
    c.start(c.config(
        exporters={"kafka": {"brokers": [kafka_bootstrap],
                             "logs": {"topic": out_topic, "encoding": "otlp_json"}}},
        pipelines={"traces": {"receivers": ["otlp"], "exporters": ["jaeger_storage_exporter"]},
                   "logs": {"receivers": ["otlp"], "exporters": ["kafka"]}},
        jaeger=True,
    ))
    config = yaml.safe_load((CORRELATED / "config.yaml").read_text())
    config["event"]["script"]["path"] = str(CORRELATED / "correlated.py")
    config["input"][0]["cron"]["end"] = "2026-02-20T10:04:00+00:00"  # 120 calls
    config["check_traces"] = True
    config["output"].append({"name": "all", "file": {"path": "events.jsonl"}})
    path = write("c.yaml", yaml.safe_dump(config))
    env = {"OTLP_ENDPOINT": c.otlp_grpc, "OTLP_LOGS_ENDPOINT": c.otlp_grpc}
    result = run_cli("run", path, "--seed", "11", "--quiet", "--metrics-port", "0",
                     env=os.environ | env)
    assert result.code == 0, result.stderr

    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    spans = [e for e in events if e["signal"] == "span"]
    logs = [e for e in events if e["signal"] == "log"]
    assert len(spans) == len(logs) and len(spans) + len(logs) == len(events)
    for name, mine, others in (("traces", spans, logs), ("logs", logs, spans)):
        s = result.summary(name)
        assert (s["delivered"], s["failed"], s["filtered"]) == (len(mine), 0, len(others))
        assert s["delivered"] + s["failed"] + s["filtered"] == s["produced"] == len(events)

    # the Collector's own counts: every span and record accepted, none refused
    assert c.wait_counter("otelcol_receiver_accepted_spans", len(spans)) == len(spans)
    assert c.wait_counter("otelcol_receiver_accepted_log_records", len(logs)) == len(logs)
    assert c.counter("otelcol_receiver_refused_spans") == 0
    assert c.counter("otelcol_receiver_refused_log_records") == 0

    # every trace whole in Jaeger; the consumer span links to the span that queued its order
    by_trace: dict[str, dict[str, dict]] = {}
    for span in spans:
        by_trace.setdefault(span["trace_id"], {})[span["span_id"]] = span
    # the trace check read the spans only (the logs went elsewhere)
    assert f"traces: {len(by_trace)} checked, 0 broken" in result.stderr, result.stderr
    linked = 0
    for trace_id, mine in by_trace.items():
        got = {x["spanID"]: x for x in get_trace(c.query, trace_id)}
        assert sorted(got) == sorted(mine), trace_id
        for span_id, x in got.items():
            sent = mine[span_id]
            assert x["process"]["serviceName"] == sent["service"]
            assert x["operationName"] == sent["operation"]
            assert tags(x)["signal"] == "span" and tags(x)["order_id"] == sent["order_id"]
            refs = {(r["refType"], r["traceID"], r["spanID"]) for r in x["references"]}
            want = set()
            if sent["parent_span_id"]:
                want.add(("CHILD_OF", trace_id, sent["parent_span_id"]))
            for link in sent.get("links", []):
                want.add(("FOLLOWS_FROM", link["trace_id"], link["span_id"]))
                linked += 1
            assert refs == want, (x["references"], sent)
            if sent.get("events"):
                assert [f["value"] for log in x["logs"] for f in log["fields"]
                        if f["key"] == "event"] == ["order picked"]
    assert linked == sum(1 for s in spans if "links" in s) > 100

    # every log line read back, joined to its span by trace and span id
    requests = read_requests(kafka_bootstrap, out_topic, ExportLogsServiceRequest, len(logs),
                          lambda r: sum(len(sl.log_records) for rl in r.resource_logs
                                        for sl in rl.scope_logs))
    got = Counter()
    for request in requests:
        for rl in request.resource_logs:
            service = attrs(rl.resource.attributes)["service.name"]
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    got[(r.trace_id.hex(), r.span_id.hex(), service, r.time_unix_nano,
                         r.severity_number, r.severity_text, py(r.body),
                         attrs(r.attributes)["order_id"], attrs(r.attributes)["signal"])] += 1
    want = Counter(
        (x["trace_id"], x["span_id"], x["service"], nanos(x["timestamp"]),
         SEVERITY[x["level"]], x["level"], x["message"], x["order_id"], "log") for x in logs)
    assert got == want
    assert {(k[0], k[1]) for k in got} == {(s["trace_id"], s["span_id"]) for s in spans}


def test_the_examples_own_collector_takes_both_signals(kafka_topic, collector, write):
    """examples/correlated/collector.yaml, as a user starts it, with the example as it is
    (only its window shortened and its endpoints pointed at it)."""
    c = collector()
    found = c.start(CORRELATED / "collector.yaml")
    assert found == {"COLLECTOR_OTLP_GRPC": c.otlp_grpc, "COLLECTOR_OTLP_HTTP": c.otlp_http,
                     "COLLECTOR_METRICS": f"http://127.0.0.1:{c.ports['metrics']}/metrics",
                     "COLLECTOR_QUERY": c.query}
    config = yaml.safe_load((CORRELATED / "config.yaml").read_text())
    config["event"]["script"]["path"] = str(CORRELATED / "correlated.py")
    config["input"][0]["cron"]["end"] = "2026-02-20T10:01:00+00:00"  # 30 calls
    env = os.environ | {"OTLP_ENDPOINT": c.otlp_grpc, "OTLP_LOGS_ENDPOINT": c.otlp_grpc}
    result = run_cli("run", write("c.yaml", yaml.safe_dump(config)), "--quiet",
                     "--metrics-port", "0", env=env)
    assert result.code == 0, result.stderr
    spans, logs = result.summary("traces"), result.summary("logs")
    assert spans["delivered"] == logs["filtered"] and logs["delivered"] == spans["filtered"]
    assert spans["delivered"] + logs["delivered"] == spans["produced"]
    assert c.wait_counter("otelcol_receiver_accepted_spans", spans["delivered"]) \
        == spans["delivered"]
    assert c.wait_counter("otelcol_receiver_accepted_log_records", logs["delivered"]) \
        == logs["delivered"]
    assert "order sent to the warehouse" in c.log  # the debug exporter printed the records
