"""Each of the seed's five scenarios, unchanged, end to end through the CLI in backfill."""

import json
from collections import Counter, defaultdict
from datetime import datetime

from tests.harness.cli import EXAMPLES, run_cli


def backfill(name: str, *args: str):
    result = run_cli("run", EXAMPLES / name / "config.yaml", "--mode", "backfill", *args)
    assert result.code == 0, result.stderr
    summary = result.summary("stdout-0")
    assert summary["produced"] == summary["delivered"] == len(result.lines)
    assert summary["failed"] == 0 and summary["script_errors"] == 0
    return result, summary


def test_basic():
    result, summary = backfill("basic")
    events = result.json
    assert summary["timestamps"] == len(events) == 3600
    assert events[0] == {"timestamp": "2026-02-20T10:00:00+00:00", "level": "INFO",
                         "message": "Request processed"}
    assert events[-1]["timestamp"] == "2026-02-20T10:59:59+00:00"


def test_multi_service_gives_four_per_tick():
    result, summary = backfill("multi-service")
    events = result.json
    by_ts = defaultdict(list)
    for e in events:
        by_ts[e["timestamp"]].append(e["service"])
    assert len(by_ts) == summary["timestamps"] == 360
    assert all(sorted(s) == ["api-gateway", "auth-service", "order-service", "payment-service"]
               for s in by_ts.values())
    assert all(5 <= e["cpu_percent"] <= 95 and 128 <= e["memory_mb"] <= 2048 for e in events)


def test_tagged_summaries_only_at_the_top_of_the_hour():
    result, _ = backfill("tagged")
    events = result.json
    summaries = [e for e in events if e["type"] == "summary"]
    assert [e["timestamp"] for e in summaries] == [
        "2026-02-20T10:00:00+00:00", "2026-02-20T11:00:00+00:00", "2026-02-20T12:00:00+00:00"]
    requests = [e for e in events if e["type"] == "request"]
    assert len(requests) == 3 * 720
    # merged in time order; at equal times the regular input (listed first) comes first
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)
    top = [e["type"] for e in events if e["timestamp"] == "2026-02-20T11:00:00+00:00"]
    assert top == ["request", "summary"]


def test_sessions_start_before_their_page_views():
    result, _ = backfill("sessions", "--seed", "3")
    started, ended, views = set(), set(), Counter()
    for e in result.json:
        sid = e["session_id"]
        if e["event"] == "session_start":
            assert sid not in started
            started.add(sid)
        else:
            assert sid in started and sid not in ended, e
            if e["event"] == "page_view":
                views[sid] += 1
                assert e["total_views"] == views[sid]
            else:
                ended.add(sid)
                assert e["total_views"] == views[sid]
    assert len(started) > 50 and len(ended) > 10


def test_tracing_trees_are_complete():
    result, summary = backfill("tracing")
    traces = defaultdict(list)
    for span in result.json:
        traces[span["trace_id"]].append(span)
    assert len(traces) == summary["timestamps"] == 300
    for spans in traces.values():
        assert len(spans) == 8
        ids = {s["span_id"]: s for s in spans}
        roots = [s for s in spans if s["parent_span_id"] is None]
        assert [r["service"] for r in roots] == ["api-gateway"]
        for s in spans:
            if s["parent_span_id"] is not None:
                parent = ids[s["parent_span_id"]]  # every parent reference resolves
                start = datetime.fromisoformat(s["start_time"])
                assert start >= datetime.fromisoformat(parent["start_time"])
                assert s["duration_ms"] <= parent["duration_ms"]
                if s["status"] == "ERROR":
                    assert parent["status"] == "ERROR"  # errors propagate up
        assert len({s["operation"] for s in spans}) == 1


def test_json_formatter_writes_compact_json(write):
    config = write("c.yaml", f"""
        input: [{{cron: {{expression: "* * * * * *", start: "2026-01-01T00:00:00Z",
                  end: "2026-01-01T00:00:03Z"}}}}]
        event: {{script: {{path: {EXAMPLES / "basic" / "produce.py"}}}}}
        output: [{{stdout: {{formatter: {{format: json}}}}}}]
        """)
    result = run_cli("run", config, "--mode", "backfill")
    assert result.lines[0] == json.dumps(result.json[0], separators=(",", ":"))
