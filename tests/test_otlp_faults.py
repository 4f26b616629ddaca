"""The otlp output when its endpoint is away: at start, and for a few seconds mid-run.

Against a real Jaeger. The outage mid-run goes through a TCP forwarder in front of the
shared Jaeger (its in-memory storage must survive to show every trace complete); the
endpoint-down-at-start tests use a Jaeger of their own on free ports, never the shared one.
"""

import json
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest

from connector.outputs.base import Batch
from tests.conftest import run_cli
from tests.jaeger_service import OwnJaeger, TcpProxy, wait_for_trace
from tests.test_otlp import TRACING


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
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector", "run", str(config), "--duration", "12"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        proxy.down()
        time.sleep(4)
        proxy.up()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proxy.down()
    assert proc.returncode == 0, err
    produced = int(err.split("events produced: ")[1].split()[0])
    assert f"output otlp-0: delivered {produced}, failed 0" in err
    traces = sent_traces(tmp_path / "spans.jsonl")
    assert sum(len(s) for s in traces.values()) == produced > 8 * 20 * 8
    assert not (tmp_path / "dead.jsonl").exists()
    for trace_id, span_ids in traces.items():
        got = wait_for_trace(jaeger["query"], trace_id, min_spans=len(span_ids), timeout=20)
        assert {s["spanID"] for s in got} == span_ids, trace_id


def test_endpoint_down_at_start_waits_then_fails_cleanly(tmp_path, write):
    own = OwnJaeger(tmp_path / "jaeger")  # never started: its port refuses
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


def test_endpoint_down_at_start_over_http_names_the_cause(tmp_path, write):
    own = OwnJaeger(tmp_path / "jaeger")
    config = live_tracing_config(write, own.otlp_http, connect_timeout=2,
                                 protocol="http/protobuf")
    result = run_cli("run", config, timeout=60)
    assert result.code == 1
    assert (f"cannot reach the OTLP endpoint {own.otlp_http} within 2s (Connection refused)"
            in result.stderr)


def test_a_run_waits_for_an_endpoint_that_comes_up(tmp_path, write):
    """Jaeger (our own) starts 6 s after the run: the run waits, says so, then delivers."""
    own = OwnJaeger(tmp_path / "jaeger")
    config = live_tracing_config(write, own.otlp_grpc, per_second=5, connect_timeout=60)
    starter = threading.Timer(6, own.start)
    starter.start()
    try:
        result = run_cli("run", config, "--duration", "3", timeout=120)
        starter.join()
        assert result.code == 0, result.stderr
        assert f"connecting to otlp-0 at {own.otlp_grpc} (5 s of 60 s)" in result.stderr
        summary = result.summary("otlp-0")
        assert summary["delivered"] == summary["produced"] > 0
        traces = sent_traces(tmp_path / "spans.jsonl")
        assert sum(len(s) for s in traces.values()) == summary["produced"]
        for trace_id, span_ids in traces.items():
            got = wait_for_trace(own.query, trace_id, min_spans=len(span_ids), timeout=20)
            assert {s["spanID"] for s in got} == span_ids
    finally:
        starter.join()
        own.stop()


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
