"""Replay's own logic, in process: sources read as streams (hostile ones too), re-timing,
fresh ids, loops, the recorded input's ticks. The runs against real services are in the
other modules of this folder."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.config import ConfigError, parse_config
from connector.options import prepare
from connector.replay.ids import FreshIds
from connector.replay.records import BadRecord
from connector.replay.sources import open_source
from tests.harness.cli import run_cli

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def config(tmp_path: Path, event: dict, inputs: list | None = None) -> object:
    raw = {
        "mode": "backfill",
        "input": inputs or [{"recorded": {"start": "2026-03-01T00:00:00Z"}}],
        "event": event,
    }
    return parse_config(raw, tmp_path)


def jsonl(path: Path, docs: list) -> Path:
    path.write_text("".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs))
    return path


def ticks(cfg) -> list[datetime]:
    from connector.inputs.schedule import schedule

    return [ts for ts, _ in schedule(cfg, "backfill", T0)]


def played(cfg, seed: int = 7) -> tuple[list[str], object]:
    """Every tick's events, as the run calls produce(); the script for its errors."""
    from connector.inputs.schedule import schedule

    script = prepare(cfg, seed)
    out: list[str] = []
    for ts, _ in script.follow(iter(schedule(cfg, "backfill", T0))):
        try:
            out += script.checked(script.produce({"timestamp": ts, "tags": ()}))
        except Exception as exc:
            script.raised(exc)
    return out, script


def test_recorded_gaps_are_kept_exactly_and_speed_divides_them(tmp_path):
    gaps = [0.0, 0.001, 0.25, 1.5, 0.0, 3.000001]
    times = [T0 + timedelta(seconds=sum(gaps[: i + 1])) for i in range(len(gaps))]
    path = jsonl(tmp_path / "r.jsonl", [{"timestamp": t.isoformat(), "n": i}
                                         for i, t in enumerate(times)])
    for speed in (1.0, 2.0):
        cfg = config(tmp_path, {"replay": {"jsonl": {"path": str(path)}}},
                     [{"recorded": {"speed": speed, "start": "2026-03-01T00:00:00Z"}}])
        got = ticks(cfg)
        assert len(got) == len(times)
        for a, b, ra, rb in zip(got, got[1:], times, times[1:], strict=False):
            assert abs((b - a) - (rb - ra) / speed) <= timedelta(microseconds=1)
        events, _ = played(cfg)
        docs = [json.loads(e) for e in events]
        assert [d["n"] for d in docs] == list(range(len(times)))
        assert [datetime.fromisoformat(d["timestamp"]) for d in docs] == got


def test_out_of_order_records_keep_their_order_at_the_previous_time(tmp_path):
    path = jsonl(tmp_path / "r.jsonl", [{"timestamp": 10}, {"timestamp": 5}, {"timestamp": 12}])
    got = ticks(config(tmp_path, {"replay": {"jsonl": {"path": str(path)}}}))
    assert got[0] == got[1] and (got[2] - got[0]) == timedelta(seconds=2)


def test_epoch_numbers_are_rewritten_in_their_own_unit(tmp_path):
    ms = int(T0.timestamp() * 1000)
    path = jsonl(tmp_path / "r.jsonl", [{"timestamp": ms}, {"timestamp": ms + 1500}])
    events, _ = played(config(tmp_path, {"replay": {"jsonl": {"path": str(path)}}}))
    values = [json.loads(e)["timestamp"] for e in events]
    start = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)
    assert values == [start, start + 1500] and all(type(v) is int for v in values)


def test_new_ids_are_consistent_seeded_and_fresh_per_loop(tmp_path):
    trace, root, child = "ab" * 16, "cd" * 8, "ef" * 8
    path = jsonl(tmp_path / "r.jsonl", [
        {"timestamp": 0, "trace_id": trace, "span_id": root},
        {"timestamp": 1, "trace_id": trace, "span_id": child, "parent_span_id": root},
    ])
    event = {"replay": {"jsonl": {"path": str(path)}, "new_ids": True, "loop": 2}}
    first, _ = played(config(tmp_path, event), seed=1)
    again, _ = played(config(tmp_path, event), seed=1)
    other, _ = played(config(tmp_path, event), seed=2)
    assert first == again and first != other
    docs = [json.loads(e) for e in first]
    assert len(docs) == 4
    for a, b in (docs[0:2], docs[2:4]):  # each loop: one trace, the parent followed
        assert a["trace_id"] == b["trace_id"] != trace
        assert b["parent_span_id"] == a["span_id"] != root
    assert docs[0]["trace_id"] != docs[2]["trace_id"]  # a fresh trace per loop
    kept, _ = played(config(tmp_path, {"replay": {"jsonl": {"path": str(path)}}}))
    assert json.loads(kept[1])["parent_span_id"] == root  # without new_ids: kept


def test_fresh_ids_are_valid_ids():
    ids = FreshIds(b"k", 0)
    assert len(ids.trace("00" * 15 + "01")) == 32 and len(ids.span("00" * 7 + "01")) == 16
    assert ids.span("") == ""


def test_loop_for_ever_over_an_empty_file_ends(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    events, _ = played(config(tmp_path, {"replay": {"jsonl": {"path": str(path)}, "loop": True}}))
    assert events == []


def test_log_lines_with_a_strptime_timestamp(tmp_path):
    log = tmp_path / "app.log"
    log.write_text(
        "2026-01-01 10:00:00 INFO started\n"
        "2026-01-01 10:00:02 ERROR failed\n"
        "  at frame one\n"
        "2026-01-01 10:00:05 INFO done\n"
    )
    event = {"replay": {"lines": {"path": str(log), "pattern": r"^(\S+ \S+) ",
                                  "format": "%Y-%m-%d %H:%M:%S"}}}
    events, script = played(config(tmp_path, event))
    assert events == [
        "2026-03-01 00:00:00 INFO started",
        "2026-03-01 00:00:02 ERROR failed",
        "  at frame one",  # a continuation line: as it was, right after its line
        "2026-03-01 00:00:05 INFO done",
    ]
    assert not script.errors


def test_hostile_lines_fail_alone(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"timestamp": 1}\nnot json\n[1, 2]\n{"no_time": 1}\n\xff\xfe\n'
                     b'{"timestamp": "yesterday"}\n{"timestamp": 2}\n')
    events, script = played(config(tmp_path, {"replay": {"jsonl": {"path": str(path)}}}))
    assert len(events) == 2
    assert script.errors["bad_record"] == 5


def test_a_truncated_gzip_plays_what_it_holds_then_fails_once(tmp_path):
    whole = gzip.compress(b"".join(
        json.dumps({"timestamp": i, "pad": "x" * 200}).encode() + b"\n" for i in range(2000)
    ))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    events, script = played(config(tmp_path, {"replay": {"jsonl": {"path": str(path)}}}))
    assert 0 < len(events) < 2000
    assert [json.loads(e)["pad"] for e in events] == ["x" * 200] * len(events)
    assert script.errors["bad_record"] == 1


def otlp_request(trace: str, spans: list[tuple[str, str, int, int, str]]) -> dict:
    """A traces request as the Collector's file exporter writes it."""
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"scope": {}, "spans": [
            {"traceId": trace, "spanId": sid, "parentSpanId": parent, "name": name,
             "kind": 2, "startTimeUnixNano": str(start), "endTimeUnixNano": str(end),
             "attributes": [{"key": "n", "value": {"intValue": "3"}}], "status": {}}
            for sid, parent, start, end, name in spans
        ]}],
    }]}


def test_otlp_traces_keep_their_shape_and_offsets(tmp_path):
    base = int(T0.timestamp()) * 10**9
    trace = "0af7651916cd43dd8448eb211c80319c"
    spans = [("b7ad6b7169203331", "", base, base + 5_000_000, "root"),
             ("00f067aa0ba902b7", "b7ad6b7169203331", base + 1_000_123, base + 2_000_000, "c")]
    path = tmp_path / "dump.json.gz"
    path.write_bytes(gzip.compress((json.dumps(otlp_request(trace, spans)) + "\n").encode()
                                   + json.dumps({"resourceLogs": []}).encode() + b"\n"))
    events, script = played(config(tmp_path, {"replay": {"otlp": {"path": str(path)},
                                                         "new_ids": True}}))
    assert script.errors["bad_record"] == 1  # the logs request in a traces file
    root, child = (json.loads(e) for e in events)
    assert child["parent_span_id"] == root["span_id"] != "b7ad6b7169203331"
    assert root["trace_id"] == child["trace_id"] != trace
    assert root["start_time"] == "2026-03-01T00:00:00+00:00"
    offset = datetime.fromisoformat(child["start_time"]) - datetime.fromisoformat(
        root["start_time"])
    assert offset == timedelta(microseconds=1000)  # 1.000123 ms, to the microsecond
    assert (root["duration_ms"], child["duration_ms"]) == (5.0, 0.999877)
    assert root["kind"] == "SERVER" and root["attributes"] == {"n": 3}


def test_a_record_goes_through_the_script_when_both_are_named(tmp_path):
    path = jsonl(tmp_path / "r.jsonl", [{"timestamp": 0, "v": 1}, {"timestamp": 1, "v": 2}])
    script = tmp_path / "t.py"
    script.write_text("import json\n"
                      "def produce(params):\n"
                      "    doc = json.loads(params['record'])\n"
                      "    doc['v'] *= 10\n"
                      "    return json.dumps(doc)\n")
    events, _ = played(config(tmp_path, {"replay": {"jsonl": {"path": str(path)}},
                                         "script": {"path": str(script)}}))
    assert [json.loads(e)["v"] for e in events] == [10, 20]


def test_schedule_pacing_ends_with_the_recording(tmp_path):
    path = jsonl(tmp_path / "r.jsonl", [{"timestamp": (T0 + timedelta(seconds=i)).isoformat()}
                                         for i in range(5)])
    cfg = config(tmp_path, {"replay": {"jsonl": {"path": str(path)}, "loop": 3}},
                 [{"rate": {"per_second": 100, "start": "2026-03-01T00:00:00Z",
                                   "end": "2026-03-01T01:00:00Z"}}])
    events, _ = played(cfg)
    assert len(events) == 15
    stamps = [datetime.fromisoformat(json.loads(e)["timestamp"]) for e in events]
    assert stamps[1] - stamps[0] == timedelta(milliseconds=10)  # the rate's ticks, not the gaps


@pytest.mark.parametrize("event, inputs, message", [
    ({"script": None}, None, "event.script: required key is missing"),
    ({"replay": {"new_ids": True}}, None, "name exactly one source"),
    ({"replay": {"jsonl": {"path": "nope.jsonl"}, "lines": {"path": "x", "pattern": "(x)",
                                                             "format": "%Y"}}}, None,
     "name exactly one source"),
    ({"replay": {"lines": {"path": "r.jsonl", "pattern": "no group", "format": "%Y"}}}, None,
     "needs a group"),
    ({"replay": {"jsonl": {"path": "r.jsonl"}, "loop": 0}}, None, "loop"),
    ({"replay": {"jsonl": {"path": "r.jsonl"}}},
     [{"recorded": {"count": 2}}], "input[0].recorded.count"),
    ({"replay": {"jsonl": {"path": "r.jsonl"}}},
     [{"recorded": {}}, {"rate": {"per_second": 1}}], "pace the replay alone"),
    ({"replay": {"kafka": {"bootstrap_servers": "x", "topic": "t", "encoding": "avro"}}},
     None, "needs schema_registry"),
])
def test_config_errors_name_the_key(tmp_path, event, inputs, message):
    jsonl(tmp_path / "r.jsonl", [{"timestamp": 0}])
    event = {k: v for k, v in event.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        config(tmp_path, event, inputs)
    assert message in str(err.value)


def test_recorded_input_without_a_replay_is_a_config_error(tmp_path, write):
    script = write("p.py", "def produce(params):\n    return 'x'\n")
    path = write("c.yaml", f"input:\n  - recorded: {{}}\nevent:\n  script: {{path: {script}}}\n")
    result = run_cli("validate", path)
    assert result.code == 2 and "input[0].recorded: plays the recording" in result.stderr
    assert "Traceback" not in result.stderr


def test_open_source_streams(tmp_path):
    """One record at a time: the reader holds no list of the file."""
    path = jsonl(tmp_path / "r.jsonl", [{"timestamp": i} for i in range(3)])
    cfg = config(tmp_path, {"replay": {"jsonl": {"path": str(path)}}})
    records = open_source(cfg.event.replay, UTC).records()
    first = next(records)
    assert not isinstance(first, BadRecord) and first.data == {"timestamp": 0}


def test_otlp_logs_and_links_follow_the_new_ids(tmp_path):
    trace, span = "ab" * 16, "cd" * 8
    spans = otlp_request(trace, [(span, "", 10**18, 10**18 + 1000, "root")])
    spans["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["links"] = [
        {"traceId": trace, "spanId": span}]
    logs = {"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "svc"}},
        {"key": "host", "value": {"stringValue": "h1"}}]},
        "scopeLogs": [{"logRecords": [
            {"timeUnixNano": str(10**18 + 5), "severityText": "WARN",
             "body": {"kvlistValue": {"values": [{"key": "k", "value": {"doubleValue": 1.5}}]}},
             "traceId": trace, "spanId": span,
             "attributes": [{"key": "a", "value": {"boolValue": True}}]}]}]}]}
    (tmp_path / "spans.json").write_text(json.dumps(spans) + "\n")
    (tmp_path / "logs.json").write_text(json.dumps(logs) + "\n")
    (s,), _ = played(config(tmp_path, {"replay": {"otlp": {"path": "spans.json"},
                                                  "new_ids": True}}), seed=3)
    (log,), _ = played(config(tmp_path, {"replay": {"otlp": {"path": "logs.json",
                                                             "signal": "logs"},
                                                    "new_ids": True}}), seed=3)
    s, log = json.loads(s), json.loads(log)
    assert s["links"] == [{"trace_id": s["trace_id"], "span_id": s["span_id"],
                           "attributes": {}}]
    assert (log["trace_id"], log["span_id"]) == (s["trace_id"], s["span_id"]) != (trace, span)
    assert log == {"timestamp": "2026-03-01T00:00:00+00:00", "service": "svc",
                   "severity": "WARN", "body": {"k": 1.5}, "trace_id": s["trace_id"],
                   "span_id": s["span_id"], "attributes": {"a": True},
                   "resource": {"host": "h1"}}


def test_otlp_metric_points_keep_their_order_and_values(tmp_path):
    points = [{"timeUnixNano": str(10**18 + k * 10**9), "asDouble": k / 2,
               "attributes": [{"key": "cpu", "value": {"intValue": str(k)}}]} for k in range(3)]
    request = {"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"metrics": [
        {"name": "load", "gauge": {"dataPoints": points}},
        {"name": "latency", "histogram": {"dataPoints": []}}]}]}]}
    (tmp_path / "m.json").write_text(json.dumps(request) + "\n")
    events, script = played(config(tmp_path, {"replay": {"otlp": {"path": "m.json",
                                                                  "signal": "metrics"}}}))
    docs = [json.loads(e) for e in events]
    assert [(d["name"], d["value"], d["attributes"]) for d in docs] == [
        ("load", 0.0, {"cpu": 0}), ("load", 0.5, {"cpu": 1}), ("load", 1.0, {"cpu": 2})]
    stamps = [datetime.fromisoformat(d["timestamp"]) for d in docs]
    assert stamps[1] - stamps[0] == stamps[2] - stamps[1] == timedelta(seconds=1)
    assert script.errors["bad_record"] == 1  # a histogram: no event the outputs map


def test_group_traces_replays_a_span_jsonl_trace_per_tick(tmp_path):
    trace_a, trace_b = "0a" * 16, "0b" * 16
    path = jsonl(tmp_path / "spans.jsonl", [
        {"trace_id": trace_a, "span_id": "01" * 8, "start_time": "2026-01-01T00:00:00+00:00"},
        {"trace_id": trace_a, "span_id": "02" * 8, "parent_span_id": "01" * 8,
         "start_time": "2026-01-01T00:00:00.003+00:00"},
        {"trace_id": trace_b, "span_id": "03" * 8, "start_time": "2026-01-01T00:07:00+00:00"},
    ])
    cfg = config(tmp_path, {"replay": {"jsonl": {"path": str(path), "time_field": "start_time"},
                                       "group_traces": True}},
                 [{"rate": {"per_second": 1, "start": "2026-03-01T00:00:00Z",
                            "end": "2026-03-01T00:01:00Z"}}])
    events, _ = played(cfg)
    starts = [json.loads(e)["start_time"] for e in events]
    assert starts == ["2026-03-01T00:00:00+00:00", "2026-03-01T00:00:00.003000+00:00",
                      "2026-03-01T00:00:01+00:00"]  # a trace per tick, offsets kept


def test_a_line_whose_timestamp_does_not_match_the_format_fails_alone(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("2026-01-01 10:00:00 a\n2026-13-45 10:00:00 b\n2026-01-01 10:00:01 c\n")
    event = {"replay": {"lines": {"path": str(log), "pattern": r"^(\S+ \S+)",
                                  "format": "%Y-%m-%d %H:%M:%S"}}}
    events, script = played(config(tmp_path, event))
    assert [e[-1] for e in events] == ["a", "c"] and script.errors["bad_record"] == 1


def test_the_recorded_inputs_end_cuts_the_recording(tmp_path):
    path = jsonl(tmp_path / "r.jsonl", [{"timestamp": n} for n in range(10)])
    cfg = config(tmp_path, {"replay": {"jsonl": {"path": str(path)}}},
                 [{"recorded": {"start": "2026-03-01T00:00:00Z", "end": "+1h"}}])
    from connector.inputs.schedule import schedule

    now = datetime(2026, 3, 1, 0, 0, 0, 500_000, tzinfo=UTC) - timedelta(hours=1)
    got = [ts for ts, _ in schedule(cfg, "backfill", now)]  # end: 00:00:00.5
    assert got == [datetime(2026, 3, 1, tzinfo=UTC)]
