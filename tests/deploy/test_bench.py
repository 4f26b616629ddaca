"""The benchmark suite runs end to end at a tiny size (speed is never asserted here)."""

import json
import os
import subprocess
import sys
import uuid

from confluent_kafka.admin import AdminClient

from tests.harness.cli import ROOT


def test_bench_runs_and_writes_its_table(kafka_bootstrap, jaeger, schema_registry_url, tmp_path):
    prefix = f"bench-test-{uuid.uuid4().hex[:8]}-"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "BENCH_TOPIC_PREFIX": prefix, "TMPDIR": str(scratch),
           "SCHEMA_REGISTRY_URL": schema_registry_url}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--size", "4000", "--rounds", "1",
         "--live-rate", "200", "--live-seconds", "2", "--ramp-seconds", "3", "--out", str(tmp_path / "out"),
         "--no-telemetrygen"],
        capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    # it leaves nothing behind: no temp folders, no topics
    assert list(scratch.iterdir()) == []
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=30).topics
    assert [t for t in topics if t.startswith(prefix)] == []
    from confluent_kafka.schema_registry import SchemaRegistryClient

    subjects = SchemaRegistryClient({"url": schema_registry_url}).get_subjects()
    assert [s for s in subjects if s.startswith(prefix)] == []
    [written] = (tmp_path / "out").glob("*.json")
    report = json.loads(written.read_text())
    rows = report["results"]
    assert set(rows) == {"basic", "tracing", "multi-service"}
    expected = {"S", "K", "P", "null", "null rate", "null ramp", "kafka", "kafka --workers 2",
                "kafka canary", "kafka --view", "kafka tx", "perf", "E", "C", "otlp"}
    assert set(rows["basic"]) == expected | {"kafka avro", "kafka protobuf"}
    assert set(rows["tracing"]) == expected | {"otlp collector", "otlp canary",
                                            "kafka otlp_proto", "otlp collector --workers 2"}
    assert set(rows["multi-service"]) == {"S", "E", "C", "otlp", "otlp histograms"}
    for example, name in (("basic", "otlp"), ("multi-service", "otlp"), ("tracing", "otlp collector"),
                          ("tracing", "otlp collector --workers 2")):
        assert rows[example][name]["lost"] == 0, (example, name)  # the receiver took it all
    for example in rows.values():
        for name, row in example.items():
            assert row["median"] > 0, name
            if name not in ("P", "C"):
                assert row["min"] <= row["median"] <= row["max"] and row["peak_rss_mb"] > 0
    assert report["live"]["achieved_per_second"] > 0
    assert report["live_ramp"]["seconds"] == 3 and report["live_ramp"]["worst_second_error"] >= 0
    assert "| basic         | null " in result.stdout and "/ C" in result.stdout
