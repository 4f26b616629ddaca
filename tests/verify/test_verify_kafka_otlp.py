"""A kafka output with an otlp trace encoding: the manifest holds its records (offsets and
hashes) and its traces (the message key is the trace id, the events its spans), and one
`connector verify` checks both: the records in the topic, the traces in the store that a
Collector's kafka receiver fills."""

from __future__ import annotations

import json

import pytest

from connector.manifest import read_manifest
from tests.harness.cli import EXAMPLES, no_traceback, run_cli, wait_for
from tests.harness.collector import kafka_receiver

pytestmark = pytest.mark.timeout(300)


def test_kafka_otlp_traces_are_verified_in_the_topic_and_the_store(kafka_bootstrap, kafka_topic,
                                                                   collector, write, tmp_path):
    topic = kafka_topic("otlp")
    config = write("c.yaml", f"""
        mode: backfill
        metrics: {{port: 0}}
        input: [{{cron: {{expression: "*/2 * * * * *", start: "2026-02-20T10:00:00Z",
                          end: "2026-02-20T10:01:00Z"}}}}]
        event: {{script: {{path: {EXAMPLES / "tracing" / "tracing.py"}}}}}
        output:
          - kafka: {{bootstrap_servers: "{kafka_bootstrap}", topic: {topic},
                     encoding: otlp_proto}}
        """)
    manifest = tmp_path / "m.manifest"
    result = run_cli("run", config, "--manifest", manifest, "--quiet")
    assert result.code == 0, result.stderr
    record = read_manifest(manifest).outputs["kafka-0"]
    assert len(record.traces) == 30
    assert all(len(spans) == 8 for spans in record.traces.values())
    assert sum(len(p.offsets) for p in record.kafka.values()) == 30  # a message a trace

    alone = run_cli("verify", manifest, "--json", "--quiet")  # the topic only, said so
    assert alone.code == 0, alone.stderr
    assert any("not looked up" in n for n in json.loads(alone.stdout)["notes"])

    c = collector()
    c.start(c.config(
        receivers=kafka_receiver(kafka_bootstrap, kafka_topic.group(),
                                 traces={"topic": topic, "encoding": "otlp_proto"}),
        pipelines={"traces": {"receivers": ["kafka"], "exporters": ["jaeger_storage_exporter"]}},
        jaeger=True,
    ))

    def verified():
        out = run_cli("verify", manifest, "--traces-query", c.query, "--json", "--quiet")
        no_traceback(out.stderr)
        return json.loads(out.stdout) if out.code == 0 else None

    report = wait_for("the Collector's store to hold every trace", verified, 90, 1)
    rows = {r["what"]: r for r in report["outputs"]}
    assert rows["records"]["found"] == 30 and rows["traces"]["found"] == 30
