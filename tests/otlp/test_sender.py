"""The shared OTLP sender's own logic: the server's throttle (HTTP Retry-After, gRPC RetryInfo),
the flush deadline, and close() ending a retry wait.

The endpoints here are small in-process servers of our own that answer 429 or
RESOURCE_EXHAUSTED on cue; what a real Collector accepts is proven in tests/collector/.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from connector.delivery import THROTTLED, UNDELIVERED, retry_after
from connector.otlp.sender import grpc_retry_delay
from connector.otlp.wire import field, varint
from connector.outputs.base import Acks, Batch
from connector.outputs.otlp import Config, OtlpOutput

T0 = "2026-02-20T10:00:00+00:00"
LOGS = [json.dumps({"timestamp": T0, "body": f"line {i}", "service": "svc"}) for i in range(5)]


class Answers:
    """What the server answers, in turn (the last one repeats), and what it received."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.received: list[tuple[float, str, bytes]] = []
        self.lock = threading.Lock()

    def next(self, path: str, body: bytes):
        with self.lock:
            self.received.append((time.monotonic(), path, body))
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def gaps(self) -> list[float]:
        times = [t for t, _, _ in self.received]
        return [b - a for a, b in itertools.pairwise(times)]


@pytest.fixture
def http_endpoint():
    """(start(Answers) -> endpoint URL): an HTTP server; an answer is (status, headers)."""
    servers = []

    def start(answers: Answers) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, headers, *given = answers.next(self.path, body)
                payload = given[0] if given else (
                    ExportLogsServiceResponse().SerializeToString() if status == 200 else b"slow down")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def output(
    endpoint: str, protocol: str = "http/protobuf", batch: dict | None = None, **retry
) -> tuple[OtlpOutput, Acks]:
    config = Config(
        endpoint=endpoint, protocol=protocol, signal="logs", connect_timeout=5, timeout=5,
        retry={"attempts": 5, "initial_backoff": 0.01, "max_backoff": 0.02, **retry},
        mapping={"body": "body"}, batch=batch or {},
    )
    acks = Acks("o", "otlp")
    out = OtlpOutput(config, acks)
    out.start()
    return out, acks


def send(out: OtlpOutput, acks: Acks, flush: float = 10.0) -> float:
    """Hand LOGS over, flush, close: the seconds flush took."""
    acks.handed += len(LOGS)
    out.write_batch(Batch(LOGS))
    started = time.monotonic()
    out.flush(flush)
    took = time.monotonic() - started
    out.close()
    acks.settle()
    assert acks.delivered + acks.failed == len(LOGS)
    return took


def records(body: bytes) -> list[str]:
    request = ExportLogsServiceRequest.FromString(body)
    return [r.body.string_value for rl in request.resource_logs
            for sl in rl.scope_logs for r in sl.log_records]


def test_http_retry_after_seconds_is_honoured_on_v1_logs(http_endpoint):
    answers = Answers((429, {"Retry-After": "1"}), (200, {}))
    out, acks = output(http_endpoint(answers))
    send(out, acks)
    assert (acks.delivered, acks.failed) == (len(LOGS), 0)
    assert [path for _, path, _ in answers.received] == ["/v1/logs", "/v1/logs"]
    assert records(answers.received[1][2]) == [f"line {i}" for i in range(5)]
    [gap] = answers.gaps()
    assert gap >= 1.0  # the server's delay, not our 0.01 s backoff


def test_http_retry_after_as_a_date_is_honoured(http_endpoint):
    # an HTTP date has whole seconds: 3 s ahead is at least 2 s from now
    answers = Answers((503, {"Retry-After": formatdate(time.time() + 3, usegmt=True)}), (200, {}))
    out, acks = output(http_endpoint(answers))
    send(out, acks)
    assert (acks.delivered, acks.failed) == (len(LOGS), 0)
    [gap] = answers.gaps()
    assert 1.9 <= gap <= 4.0


def test_a_throttle_past_the_flush_deadline_fails_at_once_as_throttled(http_endpoint, tmp_path):
    answers = Answers((429, {"Retry-After": "30"}))
    out, acks = output(http_endpoint(answers))
    acks._dead_letter_path = tmp_path / "dead.jsonl"
    took = send(out, acks, flush=3.0)
    assert took < 2.5  # not the 30 s the server asked for, nor the whole flush timeout
    assert acks.failed == len(LOGS) and acks.reasons == {THROTTLED: len(LOGS)}
    assert len(answers.received) == 1
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert sorted(d["value"] for d in dead) == sorted(LOGS)
    assert dead[0]["error"] == (
        "throttled: HTTP 429: slow down; asked to retry after 30 s, past the deadline")


def test_close_ends_a_retry_wait_at_once(http_endpoint):
    answers = Answers((503, {}))  # retryable, no delay given: our own (long) backoff
    out, acks = output(http_endpoint(answers), initial_backoff=60, max_backoff=60)
    acks.handed += len(LOGS)
    out.write_batch(Batch(LOGS))
    out.poll()
    deadline = time.monotonic() + 5
    while not answers.received and time.monotonic() < deadline:
        out.sender.poll()
        time.sleep(0.05)
    time.sleep(0.2)  # the sender is now waiting 30-60 s before its retry
    started = time.monotonic()
    out.close()
    assert time.monotonic() - started < 1.5
    assert not out.sender.thread.is_alive()
    assert acks.failed == len(LOGS) and acks.reasons == {UNDELIVERED: len(LOGS)}
    assert len(answers.received) == 1


def test_events_that_do_not_map_fail_with_their_reason_when_close_fails_the_rest(http_endpoint):
    """The sender thread maps each batch as it takes it: batches still queued (or never
    handed) at close() are mapped then, so an event that does not map fails with its own
    reason, not as undelivered, and every event is counted once."""
    answers = Answers((503, {}))
    # each write below is a batch of its own
    out, acks = output(http_endpoint(answers), batch={"max_spans": len(LOGS)},
                       initial_backoff=60, max_backoff=60)
    bad = ["not json", json.dumps({"timestamp": "yesterday", "body": "x"})]
    acks.handed += len(LOGS)
    out.write_batch(Batch(LOGS))  # in flight: the endpoint answers 503, a retry waits
    deadline = time.monotonic() + 5
    while not answers.received and time.monotonic() < deadline:
        time.sleep(0.02)
    queued = [*bad, *LOGS[:3]]
    acks.handed += len(queued) + len(bad)
    out.write_batch(Batch(queued))  # queued behind it
    out.write_batch(Batch(bad))  # pending, never handed to the sender
    out.close()
    assert acks.failed == len(LOGS) + len(queued) + len(bad) and acks.pending == 0
    assert acks.reasons == {
        UNDELIVERED: len(LOGS) + 3,
        "not JSON: cannot map to a log record": 2,
        "cannot map to a log record: field 'timestamp' is not an ISO-8601 time": 2,
    }


# -- gRPC: RetryInfo in grpc-status-details-bin ------------------------------------------------


def status_details(seconds: int, nanos: int = 0, type_url: str = "google.rpc.RetryInfo") -> bytes:
    """google.rpc.Status{code 1, message 2, details 3: Any{type_url 1, value 2}} holding a
    RetryInfo{retry_delay 1: Duration}, written out here (googleapis-common-protos is not a
    dependency); the Duration is protobuf's own."""
    retry_info = field(b"\x0a", Duration(seconds=seconds, nanos=nanos).SerializeToString())
    any_message = field(b"\x0a", f"type.googleapis.com/{type_url}".encode()) + field(
        b"\x12", retry_info)
    return b"\x08" + varint(8) + field(b"\x12", b"slow down") + field(b"\x1a", any_message)


@pytest.fixture
def grpc_endpoint():
    """start(Answers) -> endpoint; an answer is None (OK) or trailing status details."""
    from concurrent import futures

    servers = []

    def start(answers: Answers) -> str:
        def export(body, context):
            details = answers.next("LogsService/Export", body)
            if details is None:
                return ExportLogsServiceResponse().SerializeToString()
            context.set_trailing_metadata([("grpc-status-details-bin", details)])
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")

        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.logs.v1.LogsService",
            {"Export": grpc.unary_unary_rpc_method_handler(export)},
        )
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(0)


def test_grpc_retry_info_is_honoured(grpc_endpoint):
    answers = Answers(status_details(1, 200_000_000), None)
    out, acks = output(grpc_endpoint(answers), protocol="grpc")
    send(out, acks)
    assert (acks.delivered, acks.failed) == (len(LOGS), 0)
    assert records(answers.received[1][2]) == [f"line {i}" for i in range(5)]
    [gap] = answers.gaps()
    assert gap >= 1.2


def test_grpc_retry_info_past_the_flush_deadline_fails_as_throttled(grpc_endpoint):
    answers = Answers(status_details(45))
    out, acks = output(grpc_endpoint(answers), protocol="grpc")
    took = send(out, acks, flush=3.0)
    assert took < 2.5
    assert acks.reasons == {THROTTLED: len(LOGS)} and len(answers.received) == 1


# -- parsing the server's delay: hostile values ----------------------------------------------


@pytest.mark.parametrize(("value", "delay"), [
    ("7", 7.0), (" 0 ", 0.0), (None, None), ("", None), ("-3", None), ("1.5", None),
    ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date past: retry now
    ("Wed, 99 Oct 2015 07:28:00 GMT", None), ("\x00\xff", None), ("9" * 400, float("9" * 400)),
])
def test_retry_after_values(value, delay):
    assert retry_after(value) == delay


def test_retry_after_date_ahead():
    assert 9 <= retry_after(formatdate(time.time() + 10, usegmt=True)) <= 10


@pytest.mark.parametrize(("details", "delay"), [
    (status_details(2, 500_000_000), 2.5),
    (status_details(0), 0.0),
    (status_details(3, type_url="google.rpc.DebugInfo"), None),
    (None, None),
    (b"", None),
    (b"\xff\xff\xff", None),  # not a message
    (b"\x1a\x05abc", None),  # truncated
    (b"\x1a\x00", None),  # an empty Any
    (status_details(-5), 0.0),  # negative: no delay to honour
])
def test_grpc_retry_delay_values(details, delay):
    assert grpc_retry_delay(details) == delay


def test_the_senders_not_sent_reason_is_the_outputs():
    from connector.otlp import sender
    from connector.outputs import base

    assert sender.NOT_SENT == base.NOT_SENT


def test_metrics_go_to_v1_metrics_and_rejected_points_fail_at_most_every_event(http_endpoint):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    )

    # the endpoint took the request but refused 7 data points: more than the 2 events (of
    # 2 points each) it came from, so each event fails once, no more
    refused = ExportMetricsServiceResponse()
    refused.partial_success.rejected_data_points = 7
    answers = Answers((200, {}, refused.SerializeToString()))
    config = Config(endpoint=http_endpoint(answers), protocol="http/protobuf", signal="metrics",
                    mapping={"metrics": {"a": {}, "b": {"type": "sum"}}}, connect_timeout=5)
    acks = Acks("o", "otlp")
    out = OtlpOutput(config, acks)
    out.start()
    events = [json.dumps({"timestamp": T0, "a": 1, "b": 2.5, "host": "h"}) for _ in range(2)]
    acks.handed += 2
    out.write_batch(Batch(events))
    out.flush(5)
    out.close()
    assert (acks.delivered, acks.failed) == (0, 2)
    assert acks.reasons == {"rejected by the endpoint (partial success)": 2}
    [(_, path, body)] = answers.received
    assert path == "/v1/metrics"
    request = ExportMetricsServiceRequest.FromString(body)
    assert [m.name for m in request.resource_metrics[0].scope_metrics[0].metrics] == ["a", "b"]
