"""OTLP faults: the endpoint away at start (a private Jaeger, stopped: its ports refuse;
then started 6 s into the run), away for a few seconds mid-run (a TCP forwarder in front of
the shared Jaeger, taken down and up again: the shared Jaeger itself is never touched), a
private Jaeger killed (kill -9) for ~8 s in the middle of a live run and started again,
and the otlp output itself blocked by an endpoint that went away (the stop deadline, a
second signal).

The private Jaeger keeps its traces on disk (badger), so what was stored before the kill
is still there to be read back. Each test reads back what arrived and checks the accounts:
every span in Jaeger or counted failed and dead-lettered once, never both.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from datetime import datetime

import pytest

from connector.outputs.base import Batch
from tests.harness.accounts import check_accounts, dead_letters
from tests.harness.cli import EXAMPLES, Run, no_traceback, run_cli, through_outage, wait_for
from tests.harness.faults import write_config
from tests.harness.jaeger import TcpProxy, wait_for_trace

pytestmark = pytest.mark.timeout(150)

TRACING = EXAMPLES / "tracing" / "tracing.py"
OUT = "otlp-0"
SPANS = 4  # spans per trace (per produce() call)
RESUME = 2.0  # seconds within which exports must succeed again once Jaeger answers
OUTAGE = 8  # seconds Jaeger is down (the issue saw 22 s; shorter keeps CI fast)

# Trace n has SPANS spans: a root and its children, ids derived from n (RUN keeps runs
# apart). The span's start is the call's scheduled timestamp.
TRACE_SCRIPT = """\
import json
RUN = {run!r}
n = 0

def produce(params):
    global n
    n += 1
    trace_id = RUN + "%016x" % n
    root = "%016x" % (n * 8)
    start = params["timestamp"].isoformat()
    return [json.dumps({{
        "trace_id": trace_id, "span_id": "%016x" % (n * 8 + k), "n": n,
        "parent_span_id": None if k == 0 else root, "service": "faults",
        "operation": "op%d" % k, "start_time": start, "duration_ms": 5, "status": "OK",
    }}) for k in range({spans})]
"""


def trace_config(tmp_path, endpoint: str, per_second: float, **extra) -> tuple[str, object]:
    run_id = uuid.uuid4().hex[:16]
    script = tmp_path / "traces.py"
    script.write_text(TRACE_SCRIPT.format(run=run_id, spans=SPANS))
    out = {"otlp": {"endpoint": endpoint, "dead_letter": "dead.jsonl", **extra}}
    return run_id, write_config(tmp_path / "c.yaml", script, [out], per_second)


def live_tracing_config(write, endpoint: str, per_second: int = 20, **otlp) -> str:
    extra = "".join(f", {k}: {v}" for k, v in otlp.items())
    return write("c.yaml", f"""
        metrics: {{port: 0}}
        input: [{{rate: {{per_second: {per_second}}}}}]
        event: {{script: {{path: {TRACING}}}}}
        output:
          - otlp: {{endpoint: '{endpoint}', dead_letter: dead.jsonl{extra}}}
          - file: {{path: spans.jsonl, mode: overwrite}}
        """)


def sent_traces(path) -> dict[str, set[str]]:
    traces = defaultdict(set)
    for line in path.read_text().splitlines():
        span = json.loads(line)
        traces[span["trace_id"]].add(span["span_id"])
    return traces


@pytest.mark.wallclock
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_exports_resume_at_once_when_the_endpoint_returns(jaeger, write, tmp_path, protocol):
    """The endpoint away for 4 s mid-run, then back: nothing fails, and every trace is
    complete in Jaeger (spans used to be lost in the 3-4 s of gRPC's reconnect backoff after
    the endpoint returned, and the retries gave up during the outage itself)."""
    grpc = protocol == "grpc"
    proxy = TcpProxy(jaeger["otlp_grpc"] if grpc else jaeger["otlp_http"])
    proxy.up()
    address = proxy.address if grpc else f"http://{proxy.address}"
    config = live_tracing_config(write, address, protocol=f"'{protocol}'")
    try:
        ran = through_outage(config, 12, proxy.down, proxy.up)
    finally:
        proxy.down()
    err = ran.stderr
    assert ran.code == 0, err
    produced = int(err.split("events produced: ")[1].split()[0])
    assert f"output otlp-0: delivered {produced}, failed 0" in err
    traces = sent_traces(tmp_path / "spans.jsonl")
    assert sum(len(s) for s in traces.values()) == produced > 8 * 20 * 8
    assert not (tmp_path / "dead.jsonl").exists()
    for trace_id, span_ids in traces.items():
        got = wait_for_trace(jaeger["query"], trace_id, min_spans=len(span_ids), timeout=20)
        assert {s["spanID"] for s in got} == span_ids, trace_id


@pytest.mark.wallclock
def test_endpoint_down_at_start_waits_then_fails_cleanly(private_jaeger, write):
    own = private_jaeger
    own.stop()  # its port refuses
    config = live_tracing_config(write, own.otlp_grpc, connect_timeout=6)
    started = time.monotonic()
    result = run_cli("run", config, timeout=60)
    assert time.monotonic() - started < 6 + 8
    assert result.code == 1
    assert "Traceback" not in result.stderr
    connecting = [line for line in result.stderr.splitlines() if "connector.connecting" in line]
    assert [line.split("connector.connecting: ")[1] for line in connecting] == [
        f"connecting to otlp-0 at {own.otlp_grpc} (5 s of 6 s)"]
    assert (f"cannot reach the OTLP endpoint {own.otlp_grpc} within 6s "
            "(the gRPC channel did not become ready)") in result.stderr
    assert result.summary()["produced"] == 0


@pytest.mark.wallclock
def test_endpoint_down_at_start_over_http_names_the_cause(private_jaeger, write):
    own = private_jaeger
    own.stop()
    config = live_tracing_config(write, own.otlp_http, connect_timeout=2,
                                 protocol="http/protobuf")
    result = run_cli("run", config, timeout=60)
    assert result.code == 1
    assert (f"cannot reach the OTLP endpoint {own.otlp_http} within 2s (Connection refused)"
            in result.stderr)


@pytest.mark.wallclock
def test_a_run_waits_for_an_endpoint_that_comes_up(private_jaeger, tmp_path, write):
    """Jaeger (our own) starts once the run has said, 5 s in, that it waits for it: the run
    waits, says so, then delivers (the moment is read from the run, not guessed)."""
    own = private_jaeger
    own.stop()
    config = live_tracing_config(write, own.otlp_grpc, per_second=5, connect_timeout=60)
    run = Run(tmp_path, config, "--duration", "3", metrics=False)
    waiting = f"connecting to otlp-0 at {own.otlp_grpc} (5 s of 60 s)"
    wait_for("the run to say it waits", lambda: waiting in run.stderr, timeout=60)
    own.start()
    code = run.wait(120)
    assert code == 0, run.stderr
    summary = run.summary
    assert summary.delivered("otlp-0") == summary.produced > 0, summary.text
    traces = sent_traces(tmp_path / "spans.jsonl")
    assert sum(len(s) for s in traces.values()) == summary.produced
    for trace_id, span_ids in traces.items():
        got = wait_for_trace(own.query, trace_id, min_spans=len(span_ids), timeout=20)
        assert {s["spanID"] for s in got} == span_ids


def spans(count: int, first: int = 1) -> list[str]:
    """`count` valid span events, 8 per trace, distinct ids."""
    return [
        json.dumps({
            "trace_id": f"{(n - 1) // 8 + 1:032x}", "span_id": f"{n:016x}", "service": "svc",
            "operation": "op", "start_time": "2026-01-01T00:00:00Z", "duration_ms": 1})
        for n in range(first, first + count)
    ]


def blocked_output(jaeger, tmp_path):
    """An otlp output whose endpoint went away after start(): its queue fills, and
    write_batch blocks (backpressure)."""
    from connector.outputs import otlp
    from connector.outputs.base import Acks

    proxy = TcpProxy(jaeger["otlp_grpc"])
    proxy.up()
    dead = tmp_path / "dead.jsonl"
    config = otlp.Config(endpoint=proxy.address, queue_size=1, batch={"max_spans": 100},
                         timeout=2, dead_letter=dead)
    out = otlp.build(config, Acks("otlp-0", "otlp", dead))
    out.start()
    proxy.down()
    return out, proxy, dead


def settle_and_check(out, dead_path, handed: int) -> list[dict]:
    from connector.outputs.base import NOT_SENT

    out.close()
    out.acks.settle()
    acks = out.acks
    dead = [json.loads(line) for line in dead_path.read_text().splitlines()]
    assert acks.delivered + acks.failed == acks.handed == handed
    assert len(dead) == acks.failed and acks.reasons[NOT_SENT] > 0
    assert "never acknowledged by the output" not in acks.reasons
    values = [d["value"] for d in dead]
    assert len(set(values)) == len(values), "an event was dead-lettered twice"
    return dead


def test_otlp_stop_deadline_ends_waiting_for_room(jaeger, tmp_path):
    from connector.outputs.base import NOT_SENT

    out, proxy, dead_path = blocked_output(jaeger, tmp_path)
    events = spans(2000)
    out.acks.handed += len(events)
    out.stop_within(2)
    started = time.monotonic()
    out.write_batch(Batch(events))  # the sender holds one batch, the queue one: the rest waits
    assert time.monotonic() - started < 2 + 1
    out.flush(max(0.0, started + 2 - time.monotonic()))
    dead = settle_and_check(out, dead_path, 2000)
    assert out.acks.reasons[NOT_SENT] >= 1700
    assert {d["endpoint"] for d in dead} == {proxy.address}


def test_otlp_second_signal_fails_what_it_had_not_taken(jaeger, tmp_path):
    import signal

    out, _proxy, dead_path = blocked_output(jaeger, tmp_path)
    events = spans(2000)
    out.acks.handed += len(events)

    def interrupt(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            out.write_batch(Batch(events))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    settle_and_check(out, dead_path, 2000)


# -- a private Jaeger killed mid-run ------------------------------------------------------------


@pytest.mark.wallclock
def test_jaeger_killed_mid_run_loses_nothing_it_does_not_count(private_jaeger, tmp_path):
    """Down OUTAGE s: every span is in Jaeger or counted failed and dead-lettered, never
    both; the accounts are exact; and once Jaeger answers again, exports resume at once
    (within RESUME s, not after gRPC's grown reconnect backoff) and no span fails after."""
    run_id, config = trace_config(tmp_path, private_jaeger.otlp_grpc, 25)
    run = Run(tmp_path, config, "--duration", str(2 + OUTAGE + 8))
    run.wait_delivered(200)
    private_jaeger.kill()
    time.sleep(OUTAGE)
    private_jaeger.start()
    back = time.time()
    failed_before = run.metric("connector_events_failed_total")
    before = run.metric("connector_events_delivered_total")
    run.wait_delivered(before + 1, timeout=30)
    resumed = time.time() - back
    print(f"\nexports resumed {resumed:.2f}s after Jaeger answered again")
    code = run.wait(120)
    failed_after = run.summary.failed(OUT) - int(failed_before)
    print(f"{failed_before:.0f} span(s) failed while Jaeger was down, {failed_after} after")

    no_traceback(run.stderr)
    s = run.summary
    print("\n" + s.text)
    dead = dead_letters(tmp_path / "dead.jsonl")
    check_accounts(s, OUT, dead=dead)
    assert code == (0 if s.failed(OUT) == 0 else 1), s.text
    assert s.produced % SPANS == 0 and s.produced >= (2 + OUTAGE) * 25 * SPANS, s.text
    assert resumed <= RESUME, f"exports resumed only {resumed:.1f}s after Jaeger returned"
    assert failed_after == 0, f"{failed_after} span(s) failed after Jaeger had returned"
    assert all(r.get("value") for r in dead), "dead-letter records without their span"
    failed = [json.loads(r["value"]) for r in dead]
    failed_ids = {(f["trace_id"], f["span_id"]) for f in failed}
    assert len(failed_ids) == len(failed), "a span dead-lettered twice"
    late = [f for f in failed if datetime.fromisoformat(f["start_time"]).timestamp() > back + 2]
    assert not late, f"{len(late)} spans scheduled after Jaeger returned failed\n{s.text}"

    in_jaeger = 0
    for n in range(1, s.produced // SPANS + 1):
        trace_id = run_id + f"{n:016x}"
        stored = {(trace_id, sp["spanID"]) for sp in private_jaeger.trace(trace_id)}
        expected = {(trace_id, f"{n * 8 + k:016x}") for k in range(SPANS)}
        lost = expected - stored - failed_ids
        assert not lost, f"trace {n}: {len(lost)} span(s) neither in Jaeger nor dead-lettered"
        assert not stored & failed_ids, f"trace {n}: a span both stored and counted failed"
        assert stored <= expected
        in_jaeger += len(stored)
    assert in_jaeger == s.delivered(OUT), s.text
