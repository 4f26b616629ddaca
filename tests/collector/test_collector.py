"""Proof through a real OpenTelemetry Collector (the Jaeger v2 binary, scripts/local-collector):
what the connector sends is read by the Collector's own receivers, and the Collector's own
counters agree with what was sent (refused 0)."""

import json
from collections import defaultdict

import pytest

from tests.harness.cli import EXAMPLES, run_cli
from tests.harness.collector import kafka_receiver
from tests.harness.jaeger import get_trace, tags

TRACING = EXAMPLES / "tracing" / "tracing.py"


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_traces_on_kafka_reach_jaeger_whole_through_the_kafka_receiver(
    kafka_bootstrap, kafka_topic, collector, write, tmp_path, encoding
):
    topic = kafka_topic("traces")
    config = write("c.yaml", f"""
        mode: backfill
        input: [{{cron: {{expression: "*/2 * * * * *", start: "-2m", end: "now"}}}}]
        event: {{script: {{path: {TRACING}}}}}
        output:
          - kafka: {{bootstrap_servers: "{kafka_bootstrap}", topic: {topic}, encoding: {encoding}}}
          - file: {{path: spans.jsonl, mode: overwrite}}
        """)
    result = run_cli("run", config, "--seed", "3", "--quiet", "--metrics-port", "0")
    assert result.code == 0, result.stderr
    s = result.accounts("kafka-0")
    assert s["delivered"] == s["produced"] == 60 * 8 and s["failed"] == 0

    c = collector()
    c.start(c.config(
        receivers=kafka_receiver(kafka_bootstrap, kafka_topic.group(),
                                 traces={"topic": topic, "encoding": encoding}),
        pipelines={"traces": {"receivers": ["kafka"], "exporters": ["jaeger_storage_exporter"]}},
        jaeger=True,
    ))
    accepted = c.wait_counter("otelcol_receiver_accepted_spans", s["produced"], receiver="kafka")
    assert accepted == s["produced"]
    assert c.counter("otelcol_receiver_refused_spans", receiver="kafka") == 0

    sent = defaultdict(dict)
    for line in (tmp_path / "spans.jsonl").read_text().splitlines():
        span = json.loads(line)
        sent[span["trace_id"]][span["span_id"]] = span
    assert len(sent) == 60
    for trace_id, spans in sent.items():  # every trace, whole
        got = get_trace(c.query, trace_id)
        assert sorted(x["spanID"] for x in got) == sorted(spans), trace_id
        for x in got:
            mine = spans[x["spanID"]]
            assert x["process"]["serviceName"] == mine["service"]
            assert x["operationName"] == mine["operation"]
            assert x["duration"] == round(mine["duration_ms"] * 1000)
            assert tags(x).get("otel.status_code") == mine["status"]
            parents = [r["spanID"] for r in x["references"]]
            assert parents == ([mine["parent_span_id"]] if mine["parent_span_id"] else [])


def _script(c, *args: str):
    import subprocess
    import sys

    from tests.harness.collector import SCRIPT

    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=900, env=c.env)


def test_local_collector_starts_reports_its_endpoints_and_stops(tmp_path):
    from tests.harness.collector import Collector

    c = Collector(tmp_path / "state")
    config = c.config(pipelines={"logs": {"receivers": ["otlp"], "exporters": ["debug"]}},
                      exporters={"debug": {"verbosity": "basic"}})
    try:
        found = c.start(config)
        assert found == {
            "COLLECTOR_OTLP_GRPC": c.otlp_grpc,
            "COLLECTOR_OTLP_HTTP": c.otlp_http,
            "COLLECTOR_METRICS": f"http://127.0.0.1:{c.ports['metrics']}/metrics",
        }
        status = _script(c, "status")
        assert status.returncode == 0 and status.stdout.splitlines()[-3:] == [
            f"{k}={v}" for k, v in found.items()]
        assert c.start(config) == found  # already running with this config: the same
        other = tmp_path / "other.yaml"
        other.write_text("receivers: {}\n")
        again = _script(c, "start", str(other))
        assert again.returncode == 1 and "another config" in again.stderr
        assert c.counters(), "the Collector's own metrics are served"
    finally:
        c.stop()
    assert _script(c, "status").returncode == 3
    assert _script(c, "stop").returncode == 0  # stopping a stopped one is fine


@pytest.mark.parametrize("text, says", [
    ("- just\n- a list\n", "not a Collector config"),
    ("receivers: {otlp: [\n", "cannot read"),
    ("exporters: {nosuch: {}}\nservice: {pipelines: {logs: {receivers: [nop], "
     "exporters: [nosuch]}}}\nreceivers: {nop: {}}\n", "exited during startup"),
])
def test_local_collector_refuses_a_bad_config_clearly(tmp_path, text, says):
    from tests.harness.collector import Collector

    c = Collector(tmp_path / "state")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    try:
        r = _script(c, "start", str(path))
        assert r.returncode == 1 and says in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        c.stop()
    assert _script(c).returncode == 2 and "Usage" in _script(c).stderr
