"""`connector verify` against trace stores: the otlp output's traces read back from the
real Jaeger (complete, incomplete with the missing span ids, missing), a Jaeger that lost
its storage in a restart, and Tempo's API shape from responses in its documented format."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from connector.identity import Identity
from connector.manifest import ManifestWriter, read_manifest
from connector.testing import free_port
from tests.harness.cli import EXAMPLES, no_traceback, run_cli, wait_for
from tests.harness.summary import Summary

pytestmark = pytest.mark.timeout(300)
OUT = "otlp-0"


def config(tmp_path: Path, endpoint: str, minutes: int = 1, start: str = "10:00") -> Path:
    shutil.copy(EXAMPLES / "tracing" / "tracing.py", tmp_path / "tracing.py")
    path = tmp_path / f"c-{start.replace(':', '')}.yaml"
    path.write_text(
        "mode: backfill\nmetrics: {port: 0}\ninput:\n  - cron: {expression: '*/2 * * * * *', "
        f"start: '2026-02-20T{start}:00+00:00', end: '2026-02-20T{start}:{minutes * 59:02d}"
        "+00:00'}\nevent: {script: {path: tracing.py}}\n"
        f"output:\n  - otlp: {{endpoint: '{endpoint}'}}\n"
    )
    return path


def send(tmp_path: Path, endpoint: str, manifest: Path, start: str = "10:00") -> Summary:
    result = run_cli("run", config(tmp_path, endpoint, start=start), "--manifest", manifest,
                     "--quiet")
    no_traceback(result.stderr)
    assert result.code == 0, result.stderr
    return Summary.parse(result.stderr)


def verify(manifest: Path, query: str, *args: str) -> tuple[int, dict]:
    result = run_cli("verify", manifest, "--traces-query", query, "--json", "--quiet", *args)
    no_traceback(result.stderr)
    assert result.code != 2, result.stderr
    return result.code, json.loads(result.stdout)


def test_traces_sent_to_jaeger_are_complete(jaeger, tmp_path):
    manifest = tmp_path / "m.manifest"
    summary = send(tmp_path, jaeger["otlp_grpc"], manifest)
    traces = read_manifest(manifest).outputs[OUT].traces
    assert len(traces) * 8 == summary.outputs[OUT].delivered == 240

    def all_there():
        code, report = verify(manifest, jaeger["query"])
        return (code, report) if code == 0 else None  # the store indexes within a moment

    _, report = wait_for("Jaeger to hold every trace", all_there, 60, 1)
    (row,) = report["outputs"]
    assert (row["expected"], row["found"], row["missing"], row["incomplete"]) == (30, 30, 0, 0)


def test_a_trace_without_some_spans_is_incomplete_and_names_them(jaeger, tmp_path):
    manifest = tmp_path / "m.manifest"
    send(tmp_path, jaeger["otlp_grpc"], manifest)
    traces = read_manifest(manifest).outputs[OUT].traces
    wait_for("Jaeger to hold every trace",
             lambda: verify(manifest, jaeger["query"])[0] == 0, 60, 1)
    # What the store would hold had a processor dropped spans: the manifest records two
    # spans of the first trace that Jaeger never got, and one trace it never got at all.
    (first, spans), *rest = sorted(traces.items())
    dropped = [bytes([0xDD] * 7 + [n]) for n in (1, 2)]
    writer = ManifestWriter(tmp_path / "edited.manifest", Identity())
    recorder = writer.traces(OUT, "otlp", {"signal": "traces"})
    recorder.add([(first, s) for s in [*spans, *dropped]])
    recorder.add([(t, s) for t, ids in rest for s in ids])
    never = bytes.fromhex("0badc0ffee" + "00" * 10 + "01")
    recorder.add([(never, b"\x01" * 8)])
    writer.close()
    code, report = verify(tmp_path / "edited.manifest", jaeger["query"])
    (row,) = report["outputs"]
    assert code == 1
    assert (row["expected"], row["found"], row["incomplete"], row["missing"]) == (31, 29, 1, 1)
    by_result = {d["result"]: d for d in row["details"]}
    assert by_result["incomplete"]["trace_id"] == first.hex()
    assert by_result["incomplete"]["missing_spans"] == sorted(s.hex() for s in dropped)
    assert by_result["missing"]["trace_id"] == never.hex()


def test_a_jaeger_that_lost_its_storage_in_a_restart(private_jaeger, tmp_path):
    """The private Jaeger keeps traces in badger; wiping its folder across the restart is
    what a memory store does to them."""
    parts = tmp_path / "parts"
    parts.mkdir()
    send(tmp_path, private_jaeger.otlp_grpc, parts / "before.manifest")
    wait_for("the private Jaeger to hold the first traces",
             lambda: verify(parts / "before.manifest", private_jaeger.query)[0] == 0, 60, 1)
    private_jaeger.stop()
    for folder in ("keys", "values"):
        shutil.rmtree(private_jaeger.state / folder, ignore_errors=True)
    private_jaeger.start()
    send(tmp_path, private_jaeger.otlp_grpc, parts / "after.manifest", start="11:00")

    def settled():
        _, report = verify(parts, private_jaeger.query)
        (row,) = report["outputs"]
        return report if row["found"] == 30 else None

    report = wait_for("the traces sent after the restart", settled, 60, 1)
    (row,) = report["outputs"]
    assert (row["expected"], row["found"], row["missing"]) == (60, 30, 30)
    before = read_manifest(parts / "before.manifest").outputs[OUT].traces
    assert {d["trace_id"] for d in row["details"]} == {t.hex() for t in before}
    assert report["exit"] == 1


class Tempo(BaseHTTPRequestHandler):
    """Answers /api/traces/{id} as Tempo documents it: OTLP JSON under "batches", ids in
    base64; 404 for a trace it does not have."""

    traces: dict[str, list[bytes]] = {}
    asked: list[str] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        trace = self.path.split("?")[0].rsplit("/", 1)[-1]
        spans = self.traces.get(trace)
        if not self.path.startswith("/api/traces/") or spans is None:
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"trace not found")
            return
        tid = base64.b64encode(bytes.fromhex(trace)).decode()
        body = {"batches": [{
            "resource": {"attributes": [{"key": "service.name",
                                         "value": {"stringValue": "checkout"}}]},
            "scopeSpans": [{"scope": {"name": "connector"}, "spans": [
                {"traceId": tid, "spanId": base64.b64encode(s).decode(), "name": "op",
                 "parentSpanId": base64.b64encode(b"\x09" * 8).decode(),
                 "startTimeUnixNano": "1", "endTimeUnixNano": "2", "kind": "SPAN_KIND_SERVER"}
                for s in spans]}],
        }]}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_tempo_backend_reads_its_documented_shape(tmp_path):
    a, b, c = (bytes([n]) * 16 for n in (1, 2, 3))
    spans = [bytes([n]) * 8 for n in (5, 6, 7)]
    Tempo.traces = {a.hex(): spans, b.hex(): spans[:1]}
    writer = ManifestWriter(tmp_path / "m.manifest", Identity())
    recorder = writer.traces(OUT, "otlp", {"signal": "traces"})
    recorder.add([(t, s) for t in (a, b, c) for s in spans])
    writer.close()
    server = HTTPServer(("127.0.0.1", free_port()), Tempo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        code, report = verify(tmp_path / "m.manifest", url, "--backend", "tempo",
                              "--since", "2026-02-20T10:00:00Z", "--until", "2026-02-20T11:00Z")
    finally:
        server.shutdown()
    (row,) = report["outputs"]
    assert code == 1
    assert (row["found"], row["incomplete"], row["missing"]) == (1, 1, 1)
    incomplete = next(d for d in row["details"] if d["result"] == "incomplete")
    assert incomplete["missing_spans"] == sorted(s.hex() for s in spans[1:])
    assert all(p.startswith("/api/traces/") and "start=1771581600" in p for p in Tempo.asked)


def test_an_unreachable_query_api_or_none_given_exits_2(tmp_path):
    writer = ManifestWriter(tmp_path / "m.manifest", Identity())
    writer.traces(OUT, "otlp", {}).add([(b"\x01" * 16, b"\x02" * 8)])
    writer.close()
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_cli("verify", tmp_path / "m.manifest", "--traces-query", dead)
    no_traceback(result.stderr)
    assert result.code == 2 and f"cannot reach the trace query API at {dead}" in result.stderr
    result = run_cli("verify", tmp_path / "m.manifest")
    assert result.code == 2 and "give --traces-query URL" in result.stderr


def test_manifest_sample_keeps_the_same_traces_in_every_process(jaeger, tmp_path):
    """--manifest-sample 3 keeps the traces whose id hash falls on one in 3, in each
    worker alike; verify --sample 2 checks a further half of those."""
    from connector.manifest.hashing import sampled

    parts = tmp_path / "parts"
    result = run_cli("run", config(tmp_path, jaeger["otlp_grpc"], start="12:00"), "--workers",
                     "2", "--manifest", parts, "--manifest-sample", "3", "--quiet")
    assert result.code == 0, result.stderr
    kept = read_manifest(parts).outputs[OUT].traces
    assert kept and all(sampled(t, 3) for t in kept)
    assert len(kept) < 30
    for spans in kept.values():
        assert len(spans) == 8  # a kept trace keeps every span

    def checked():
        code, report = verify(parts, jaeger["query"], "--sample", "2")
        return report if code == 0 else None

    report = wait_for("Jaeger to hold the sampled traces", checked, 60, 1)
    (row,) = report["outputs"]
    assert row["expected"] == sum(1 for t in kept if sampled(t, 2)) == row["found"]
    assert any("one trace in 3" in note for note in report["notes"])


def test_once_an_api_answered_a_missing_trace_is_asked_of_it_alone():
    """Jaeger's v3 API answered: a trace it does not hold yet (the canary asks again and
    again) costs one request, not one to v3 and one to the v1 fallback."""
    import io
    import urllib.error

    from connector.verify.traces import TraceQuery

    held = {"01" * 16: {"result": {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"spanId": "02" * 8}]}]}]}}}
    asked = []

    def opener(request, timeout):
        url = request.full_url
        asked.append(url)
        trace = url.rsplit("/", 1)[1]
        if "/api/v3/" in url and trace in held:
            return io.BytesIO(json.dumps(held[trace]).encode())
        raise urllib.error.HTTPError(url, 404, "not found", {}, None)

    query = TraceQuery("http://jaeger:16686", opener=opener)
    assert query.get(bytes.fromhex("03" * 16)) is None  # not known yet: v3, then v1
    assert len(asked) == 2
    assert query.get(bytes.fromhex("01" * 16)) == {bytes.fromhex("02" * 8)}
    asked.clear()
    assert query.get(bytes.fromhex("03" * 16)) is None
    assert asked == [f"http://jaeger:16686/api/v3/traces/{'03' * 16}"]
