"""The replay examples run as they are (examples/replay-*), and hostile recordings in a
whole run: each bad record fails alone, counted, never a traceback."""

from __future__ import annotations

import gzip
import itertools
import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from tests.harness.cli import EXAMPLES, no_traceback, run_cli
from tests.harness.kafka import read_topic


def test_the_seeds_replay_case_an_access_log_with_its_timestamps_replaced():
    result = run_cli("run", EXAMPLES / "replay-lines" / "config.yaml", "--metrics-port", "0")
    assert result.code == 0, result.stderr
    recorded = (EXAMPLES / "replay-lines" / "access.log").read_text().splitlines()
    assert len(result.lines) == 3 * len(recorded)
    stamps = [line.split("[", 1)[1].split("]", 1)[0] for line in result.lines]
    # every line as recorded but its timestamp; the gaps halved (speed 2.0), loops in a row
    for got, want in zip(result.lines, recorded * 3, strict=True):
        assert got.split("[", 1)[0] == want.split("[", 1)[0]
        assert got.split("]", 1)[1] == want.split("]", 1)[1]
    assert stamps[:7] == ["01/Mar/2026:12:00:00 +0000"] * 3 + ["01/Mar/2026:12:00:01 +0000"] * 2 + [
        "01/Mar/2026:12:00:03 +0000", "01/Mar/2026:12:00:05 +0000"]
    assert stamps == sorted(stamps)  # the loops follow one another


def test_the_jsonl_example_follows_its_shape_into_kafka(kafka_bootstrap, kafka_topic):
    topic = kafka_topic("replayed", partitions=1)
    env = os.environ | {"TOPIC": topic, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    result = run_cli("run", EXAMPLES / "replay-jsonl" / "config.yaml", "--seed", "1",
                     "--metrics-port", "0", env=env)
    assert result.code == 0, result.stderr[-2000:]
    got = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, topic)]
    recorded = [json.loads(x) for x in
                (EXAMPLES / "replay-jsonl" / "recorded.jsonl").read_text().splitlines()]
    assert len(got) == 100 + 400  # the ramp's integral, then the hold's: 12.5 loops
    for n, doc in enumerate(got):
        was = recorded[n % len(recorded)]
        assert (doc["message"], doc["level"]) == (was["message"], was["level"])
        assert doc["trace_id"] != was["trace_id"] and doc["span_id"] != was["span_id"]
    assert got[0]["trace_id"] != got[len(recorded)]["trace_id"]  # each loop: its own ids


def run_recording(write, tmp_path, source: dict) -> tuple:
    name = next(iter(source.values()))["path"]
    config = write(f"{name}.yaml", json.dumps({
        "mode": "backfill",
        "input": [{"recorded": {"start": "2026-03-01T00:00:00Z"}}],
        "event": {"replay": source},
        "output": [{"file": {"path": f"{name}.out"}}],
    }))
    result = run_cli("run", config, "--metrics-port", "0")
    no_traceback(result.stderr)
    out = tmp_path / f"{name}.out"
    return result, out.read_text().splitlines() if out.exists() else []


def test_hostile_recordings_fail_record_by_record(write, tmp_path):
    good = [json.dumps({"timestamp": 1_700_000_000 + n, "n": n}).encode() for n in range(3000)]
    cut = gzip.compress(b"\n".join(good) + b"\n")
    (tmp_path / "cut.jsonl.gz").write_bytes(cut[: len(cut) * 2 // 3])
    result, lines = run_recording(write, tmp_path, {"jsonl": {"path": "cut.jsonl.gz"}})
    assert result.code == 1 and 0 < len(lines) < 3000
    assert [json.loads(x)["n"] for x in lines] == list(range(len(lines)))
    assert "script errors: 1, bad_record: 1" in result.stderr
    assert "gzip data broken" in result.stderr

    (tmp_path / "mixed.jsonl").write_bytes(good[0] + b"\nnot json\n\x00\x01\n" + good[1] + b"\n")
    result, lines = run_recording(write, tmp_path, {"jsonl": {"path": "mixed.jsonl"}})
    assert result.code == 1 and len(lines) == 2
    assert "mixed.jsonl:2: not JSON" in result.stderr and "bad_record: 2" in result.stderr

    logs = {"resourceLogs": [{"resource": {}, "scopeLogs": [{"logRecords": [
        {"timeUnixNano": "1700000000000000000", "body": {"stringValue": "hi"}}]}]}]}
    spans = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [
        {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "x",
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000001000000"}
    ]}]}]}
    (tmp_path / "dump.json").write_text(f"{json.dumps(logs)}\n{json.dumps(spans)}\n")
    result, lines = run_recording(write, tmp_path, {"otlp": {"path": "dump.json"}})
    assert result.code == 1 and len(lines) == 1 and json.loads(lines[0])["operation"] == "x"
    assert "an OTLP logs request, not traces" in result.stderr


@pytest.mark.wallclock
def test_live_replay_keeps_the_recorded_gaps_on_the_clock(write, tmp_path):
    """Live: each record is sent when its recorded gap (halved) has passed; its time is
    the moment it was due, so the gaps in the output are the recording's."""
    stamps = ["2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00.400+00:00",
              "2026-01-01T00:00:01+00:00"]
    (tmp_path / "r.jsonl").write_text("".join(
        json.dumps({"timestamp": t, "n": n}) + "\n" for n, t in enumerate(stamps)))
    config = write("live.yaml", json.dumps({
        "input": [{"recorded": {"speed": 2.0}}],
        "event": {"replay": {"jsonl": {"path": "r.jsonl"}}},
        "output": [{"file": {"path": "live.out"}}],
    }))
    before = datetime.now(UTC)
    result = run_cli("run", config, "--metrics-port", "0")
    assert result.code == 0, result.stderr
    docs = [json.loads(x) for x in (tmp_path / "live.out").read_text().splitlines()]
    times = [datetime.fromisoformat(d["timestamp"]) for d in docs]
    assert [d["n"] for d in docs] == [0, 1, 2] and times[0] >= before - timedelta(seconds=1)
    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(milliseconds=200),
                                                          timedelta(milliseconds=300)]
