"""Records that retention removed: a broker of the test's own checks retention every
second (the shared one every 5 minutes, a setting no client can change), a topic keeps
its records 2 s in 200 ms segments; once the segments rolled and were deleted, verify
reports every recorded offset missing, below the log start offset."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.harness.cli import no_traceback, run_cli, wait_for
from tests.harness.faults import write_config, write_script

pytestmark = pytest.mark.timeout(420)


def test_records_removed_by_retention_are_missing_with_that_reason(retention_kafka, tmp_path):
    bootstrap = retention_kafka.bootstrap
    topic = f"retention-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    short = {"retention.ms": "2000", "segment.ms": "200", "file.delete.delay.ms": "0"}
    (made,) = admin.create_topics([NewTopic(topic, 1, 1, config=short)]).values()
    made.result(timeout=30)
    script = write_script(tmp_path / "s.py", pad=20)
    config = write_config(tmp_path / "c.yaml", script, [{"kafka": {
        "bootstrap_servers": bootstrap, "topic": topic}}], per_second=100, seconds=1)
    manifest = tmp_path / "m.manifest"
    result = run_cli("run", config, "--manifest", manifest, "--quiet")
    assert result.code == 0, result.stderr
    producer = Producer({"bootstrap.servers": bootstrap})

    def rolled_away() -> bool:
        producer.produce(topic, b"{}")  # a later record rolls the segment before it
        producer.flush(10)
        time.sleep(0.3)
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
        try:
            low, _ = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        finally:
            c.close()
        return low >= 100

    wait_for("retention to delete the run's segments", rolled_away, 120, 0.5)
    out = run_cli("verify", manifest, "--json", "--quiet")
    no_traceback(out.stderr)
    assert out.code == 1, out.stderr
    (row,) = json.loads(out.stdout)["outputs"]
    assert (row["expected"], row["missing"], row["found"]) == (100, 100, 0)
    assert row["reasons"] == {
        "missing: below the log start offset (retention or deleteRecords)": 100}
