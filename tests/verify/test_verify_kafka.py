"""`connector run --manifest` then `connector verify` against the real broker: a clean
run verifies with its summary's counts; records removed by deleteRecords, compacted away
or hidden by an aborted transaction are reported, each with its reason; workers and
replicas write parts that verify reads as one run."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.harness.cli import Run, no_traceback, run_cli, wait_for
from tests.harness.faults import write_config, write_script
from tests.harness.kafka import read_topic
from tests.harness.summary import Summary

pytestmark = pytest.mark.timeout(300)
K = "kafka-0"


def verify(manifest: Path, *args: str) -> tuple[int, dict]:
    result = run_cli("verify", manifest, "--json", "--quiet", *args, timeout=180)
    no_traceback(result.stderr)
    assert result.code != 2, result.stderr
    return result.code, json.loads(result.stdout)


def row(report: dict, output: str, what: str | None = None) -> dict:
    rows = [r for r in report["outputs"] if r["output"] == output]
    rows = [r for r in rows if what is None or r["what"] == what]
    assert len(rows) == 1, report
    return rows[0]


def backfill(tmp_path: Path, outputs: list[dict], events: int, *args: str, env=None):
    script = write_script(tmp_path / "s.py", pad=20)
    config = write_config(tmp_path / "c.yaml", script, outputs, per_second=100,
                          seconds=events / 100)
    manifest = tmp_path / "m.manifest"
    result = run_cli("run", config, "--manifest", manifest, "--quiet", *args, env=env)
    no_traceback(result.stderr)
    return result, manifest


def test_a_clean_run_verifies_and_the_counts_equal_the_summary(kafka_bootstrap, kafka_topic,
                                                               tmp_path):
    topic = kafka_topic("clean")
    outputs = [
        {"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic, "key": "id",
                   "headers": {"source": "verify-test"}}},
        {"file": {"path": str(tmp_path / "out.jsonl"), "mode": "overwrite"}},
    ]
    result, manifest = backfill(tmp_path, outputs, 2000)
    assert result.code == 0, result.stderr
    summary = Summary.parse(result.stderr)
    code, report = verify(manifest)
    assert code == 0, report
    kafka, lines = row(report, K), row(report, "file-1")
    assert kafka["expected"] == kafka["found"] == summary.outputs[K].delivered == 2000
    assert lines["expected"] == lines["found"] == summary.outputs["file-1"].delivered == 2000
    for r in (kafka, lines):
        assert r["missing"] == r["altered"] == r["aborted"] == r["extra"] == 0
    assert len(read_topic(kafka_bootstrap, topic)) == 2000  # the proof verify read
    table = run_cli("verify", manifest, "--quiet")
    assert table.code == 0
    assert "verified: everything recorded was found intact" in table.stdout
    assert "kafka-0" in table.stdout and "2,000" in table.stdout
    # the manifest holds no secret and no event, only offsets and hashes
    assert b"verify-test" not in manifest.read_bytes()


def test_a_rewritten_file_line_is_altered_and_a_cut_file_missing(tmp_path):
    out = tmp_path / "out.jsonl"
    result, manifest = backfill(tmp_path, [{"file": {"path": str(out)}}], 50)
    assert result.code == 0, result.stderr
    data = bytearray(out.read_bytes())
    data[5] = ord("Z") if data[5] != ord("Z") else ord("Y")  # one byte of line 1
    out.write_bytes(bytes(data[: len(data) - 10]))  # and the last line cut short
    code, report = verify(manifest)
    lines = row(report, "file-0")
    assert code == 1
    assert (lines["found"], lines["altered"], lines["missing"]) == (48, 1, 1)
    assert lines["reasons"] == {"altered: the line's hash differs": 1,
                                "missing: the file is shorter (truncated)": 1}


def test_delete_records_makes_exactly_those_offsets_missing(kafka_bootstrap, kafka_topic,
                                                            tmp_path):
    topic = kafka_topic("deleted", partitions=3)
    outputs = [{"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic, "key": "id"}}]
    result, manifest = backfill(tmp_path, outputs, 600)
    assert result.code == 0, result.stderr
    held = [m for m in read_topic(kafka_bootstrap, topic) if m.partition() == 1]
    cut = len(held) // 2
    assert cut > 0
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    (future,) = admin.delete_records([TopicPartition(topic, 1, cut)]).values()
    assert future.result(timeout=30).low_watermark == cut
    code, report = verify(manifest)
    kafka = row(report, K)
    assert code == 1
    assert kafka["missing"] == cut and kafka["found"] == 600 - cut
    gone = sorted((d["partition"], d["offset"]) for d in kafka["details"])
    assert gone == [(1, o) for o in range(cut)]
    assert kafka["reasons"] == {
        "missing: below the log start offset (retention or deleteRecords)": cut
    }


def test_a_record_rewritten_at_a_compacted_key_is_missing_not_altered(kafka_bootstrap,
                                                                      kafka_topic, tmp_path):
    topic = kafka_topic("compacted", create=False)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    compact = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio":
               "0.001", "delete.retention.ms": "100", "min.compaction.lag.ms": "0"}
    (future,) = admin.create_topics([NewTopic(topic, 1, 1, config=compact)]).values()
    future.result(timeout=30)
    outputs = [{"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic, "key": "id"}}]
    result, manifest = backfill(tmp_path, outputs, 20)
    assert result.code == 0, result.stderr
    first = read_topic(kafka_bootstrap, topic)[0]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})

    def produce(key: bytes, value: bytes) -> None:
        producer.produce(topic, value, key)
        assert producer.flush(30) == 0
        time.sleep(0.3)  # past segment.ms: the next record rolls the segment

    produce(first.key(), b'{"rewritten": true}')  # the same key, later
    produce(b"filler-1", b"{}")  # rolls: the rewrite leaves the active segment

    def compacted() -> bool:
        produce(b"filler-2", b"{}")  # keeps rolling, so the cleaner has a closed segment
        return first.offset() not in {m.offset() for m in read_topic(kafka_bootstrap, topic)}

    wait_for("the broker's log cleaner to compact the first record away", compacted, 150, 2)
    code, report = verify(manifest)
    kafka = row(report, K)
    assert code == 1
    assert (kafka["found"], kafka["missing"], kafka["altered"]) == (19, 1, 0)
    assert kafka["details"] == [{"result": "missing",
                                 "reason": "compacted (a later record has its key)",
                                 "topic": topic, "partition": 0, "offset": first.offset()}]


def test_a_transaction_aborted_by_a_fenced_producer_is_reported_aborted(kafka_bootstrap,
                                                                        kafka_topic, tmp_path):
    topic = kafka_topic("aborted", partitions=2)
    tid = f"{topic}-tx"
    script = write_script(tmp_path / "s.py", pad=20)
    config = write_config(tmp_path / "c.yaml", script, [{"kafka": {
        "bootstrap_servers": kafka_bootstrap, "topic": topic, "key": "id",
        "transactions": {"id": tid, "commit_every": 25}}}], per_second=200)
    manifest = tmp_path / "m.manifest"
    run = Run(tmp_path, config, "--duration", "100", "--manifest", manifest, metrics=False)
    try:
        wait_for("records of the open transaction in the log",
                 lambda: len(read_topic(kafka_bootstrap, topic)) >= 100, 60, 0.5)
        fencer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": tid})
        fencer.init_transactions(30)  # aborts the connector's open transaction: fenced
        code = run.wait(90)
    finally:
        run.kill()
    assert code == 1, run.stderr
    no_traceback(run.stderr)
    assert read_topic(kafka_bootstrap, topic, read_committed=True) == []
    code, report = verify(manifest)
    kafka = row(report, K)
    assert code == 1
    assert kafka["expected"] >= 100
    assert kafka["aborted"] == kafka["expected"] and kafka["found"] == 0
    assert kafka["reasons"] == {"aborted: the transaction was aborted": kafka["expected"]}


def test_workers_and_replicas_write_parts_verified_as_one_run(kafka_bootstrap, kafka_topic,
                                                              tmp_path):
    topic = kafka_topic("parts")
    outputs = [{"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic, "key": "id"}}]
    script = write_script(tmp_path / "s.py", pad=20)
    config = write_config(tmp_path / "c.yaml", script, outputs, per_second=100, seconds=3)
    workers = tmp_path / "workers"
    result = run_cli("run", config, "--workers", "2", "--manifest", workers, "--quiet")
    assert result.code == 0, result.stderr
    delivered = Summary.parse(result.stderr).outputs[K].delivered
    assert sorted(p.name for p in workers.iterdir()) == [
        "replica-0-worker-0.manifest", "replica-0-worker-1.manifest"]
    code, report = verify(workers)
    assert code == 0 and row(report, K)["found"] == delivered == 300
    replicas = tmp_path / "replicas"
    for index in range(3):
        env = os.environ | {"CONNECTOR_REPLICAS": "3", "CONNECTOR_REPLICA_INDEX": str(index)}
        result = run_cli("run", config, "--manifest", replicas, "--quiet", env=env)
        assert result.code == 0, result.stderr
        delivered += Summary.parse(result.stderr).outputs[K].delivered
    assert len(list(replicas.iterdir())) == 3
    code, report = verify(replicas)
    assert code == 0 and row(report, K)["found"] == 900
    assert len(read_topic(kafka_bootstrap, topic)) == delivered == 1200


def test_verify_takes_the_connection_from_config_and_names_a_dead_broker(
        kafka_bootstrap, kafka_topic, tmp_path):
    from connector.testing import free_port

    topic = kafka_topic("config")
    outputs = [{"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic}}]
    result, manifest = backfill(tmp_path, outputs, 10)
    assert result.code == 0, result.stderr
    dead = f"127.0.0.1:{free_port()}"
    other = write_config(tmp_path / "other.yaml", tmp_path / "s.py", [
        {"kafka": {"bootstrap_servers": dead, "topic": topic}}], per_second=1, seconds=1)
    result = run_cli("verify", manifest, "--config", other, "--quiet", timeout=60)
    no_traceback(result.stderr)
    assert result.code == 2, result.stderr
    assert f"cannot reach Kafka at {dead} for output kafka-0" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: nope\n")
    result = run_cli("verify", manifest, "--config", bad, "--quiet")
    assert result.code == 2 and "invalid config" in result.stderr


def test_a_killed_run_leaves_a_manifest_readable_to_its_last_chunk(kafka_bootstrap, kafka_topic,
                                                                   tmp_path):
    """The manifest grows as a live run goes (a chunk every 2 s); after a kill -9 verify
    refuses it as incomplete, and with --partial checks every record it holds."""
    from connector.manifest import read_manifest

    topic = kafka_topic("killed")
    script = write_script(tmp_path / "s.py", pad=20)
    config = write_config(tmp_path / "c.yaml", script, [{"kafka": {
        "bootstrap_servers": kafka_bootstrap, "topic": topic}}], per_second=50)
    manifest = tmp_path / "m.manifest"
    run = Run(tmp_path, config, "--duration", "120", "--manifest", manifest, metrics=False)

    def recorded() -> int:
        try:
            held = read_manifest(manifest, partial=True).outputs.get(K)
        except Exception:  # not written yet
            return 0
        return 0 if held is None else sum(len(p.offsets) for p in held.kafka.values())

    try:
        wait_for("chunks of records while the run goes", lambda: run.check_alive() and
                 recorded() >= 50, 60, 0.5)
    finally:
        run.kill()
    result = run_cli("verify", manifest, "--quiet")
    assert result.code == 2 and "--partial" in result.stderr, result.stderr
    code, report = verify(manifest, "--partial")
    kafka = row(report, K)
    assert code == 0 and kafka["found"] == kafka["expected"] == recorded() >= 50
    assert any("not finished" in note for note in report["notes"])
