"""The forms the compliance battery runs every output in, each against its real service.

A form says, for one output: its settings; what a bad event is for it (or that none can
be bad); how it stalls (an endpoint that takes writes and never acknowledges them), or that
it cannot (it acknowledges on write); and how to read back what it delivered, by event id.
A new output is one more line in FORMS.

Every event carries its id as `ev-NNNNNN` (n = its number), in its text and as `n`: the
ids are read back from a file, a topic, a span id or an Avro record alike.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connector.outputs.base import Output, OutputConfig
from connector.testing import FailingSink, ListSink, StoppingSink

# Helpers of the suite, in one block (their home may move: repoint them here).
from tests.harness.faults import POSSIBLY_WRITTEN, PURGED, UNDELIVERED
from tests.harness.jaeger import TcpProxy, get_trace, wait_for_trace
from tests.harness.kafka import create_topic, read_topic

# One good event; the script of the battery runs holds the same source (battery.SCRIPT).
GOOD_EVENT = '''
import json

def good(n, trace, keep=True):
    return json.dumps({"id": "ev-%06d" % n, "n": n, "trace_id": trace,
                       "span_id": "%016x" % n, "service": "battery", "operation": "op",
                       "start_time": "2026-01-01T00:00:00Z", "duration_ms": 1, "keep": keep})
'''
_namespace: dict[str, Any] = {}
exec(GOOD_EVENT, _namespace)
good: Callable[..., str] = _namespace["good"]

_ID = re.compile(r"ev-(\d{6})")
AVRO_SCHEMA = {
    "type": "record",
    "name": "Event",
    "namespace": "battery",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "n", "type": "long"},
        {"name": "trace_id", "type": "string"},
        {"name": "span_id", "type": "string"},
        {"name": "service", "type": "string"},
        {"name": "operation", "type": "string"},
        {"name": "start_time", "type": "string"},
        {"name": "duration_ms", "type": "long"},
        {"name": "keep", "type": "boolean"},
    ],
}

PROTO_SCHEMA = """syntax = "proto3";
package battery;
import "google/protobuf/timestamp.proto";
message Event {
  string id = 1; int64 n = 2; string trace_id = 3; string span_id = 4; string service = 5;
  string operation = 6; google.protobuf.Timestamp start_time = 7; int64 duration_ms = 8;
  bool keep = 9;
}
"""


def id_of(value: str | bytes | None) -> int | None:
    """The id in an event's text (a dead letter's value, a line, a raw record)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    found = _ID.search(value)
    return int(found.group(1)) if found else None


@dataclass
class Place:
    """Where one test runs a form: its folder, its fixtures, and the trace its spans join."""

    folder: Path
    request: pytest.FixtureRequest
    trace: str = field(default_factory=lambda: uuid.uuid4().hex)

    def fixture(self, name: str) -> Any:
        """A service fixture, asked for only by the forms that need it: a missing service
        fails with the fixture's message saying how to start it."""
        return self.request.getfixturevalue(name)

    @property
    def stdout(self) -> Path:
        return self.folder / "run.out"  # where the CLI helper puts a run's stdout too


@dataclass
class Target:
    """A form set up in a Place: the settings of its config entry, or a double to build."""

    plugin: str
    settings: dict = field(default_factory=dict)
    # ids delivered to the service (waiting for at least `delivered` where it is eventual);
    # None: nothing can be read back (null sends nothing)
    read: Callable[[int], Counter | None] = lambda delivered: None
    double: Callable[[OutputConfig, str], Output] | None = None  # doubles: no config entry
    adapt: Callable[[Output], None] = lambda out: None  # after build, before start
    stall_now: Callable[[], None] = lambda: None  # called once every output has started
    blocks: bool = False  # stalled, its writes soon wait for room (they hold the run up)
    maybe_written: tuple[str, ...] = ()  # failure reasons whose events may be there anyway
    built: list[Output] = field(default_factory=list)


@dataclass(frozen=True)
class Form:
    id: str
    plugin: str  # its name in connector.outputs.OUTPUTS (a double's own, for the doubles)
    setup: Callable[[Place], Target]
    # a bad event with id n for this output, and how its reason begins; None: no event
    # can be bad for it (the battery then asserts that hostile events are all delivered)
    bad: Callable[[int, str], str] | None = None
    bad_reason: str | None = None
    # the form stalled; None: it acknowledges on write, nothing can be left pending
    stalled: Callable[[Place], Target] | None = None
    # its stalled form hurts a service of the test process's own (private_kafka): the tests
    # that stall it join the xdist group of such tests (tests/harness/parts.py)
    private: bool = False
    cli: bool = True  # a registered output (the doubles are not: they run in-process only)


# -- bad events ------------------------------------------------------------------------------


def not_json(n: int, trace: str) -> str:
    return f"not JSON ev-{n:06d}"


def line_break(n: int, trace: str) -> str:
    return f"ev-{n:06d} first line\nsecond line"


def too_large(n: int, trace: str) -> str:
    """Over librdkafka's message.max.bytes (1,000,000): refused by produce()."""
    return json.dumps({"id": f"ev-{n:06d}", "pad": "x" * 1_100_000})


def schema_mismatch(n: int, trace: str) -> str:
    doc = json.loads(good(n, trace))
    doc["n"] = "five"  # a string where the schema wants a long
    return json.dumps(doc)


def chosen(n: int, trace: str) -> str:
    """The failing double's bad event: a good one it was told to fail."""
    return good(n, trace).replace('"keep"', '"bad": true, "keep"')


# -- reading back ----------------------------------------------------------------------------


def _lines(path: Path) -> Callable[[int], Counter]:
    def read(delivered: int) -> Counter:
        if not path.exists():
            return Counter()
        return Counter(id_of(line) for line in path.read_text().splitlines())

    return read


def _topic(bootstrap: str, topic: str, decode: Callable[[bytes], list[int]]):
    def read(delivered: int) -> Counter:
        return Counter(n for record in read_topic(bootstrap, topic) for n in decode(record.value()))

    return read


def _raw(value: bytes) -> list[int]:
    return [id_of(value)]


def _otlp_proto(value: bytes) -> list[int]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest.FromString(value)
    return [
        int.from_bytes(span.span_id, "big")
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


def _avro(value: bytes) -> list[int]:
    import fastavro

    assert value[0] == 0, "not in the Confluent wire format"
    schema = fastavro.parse_schema(AVRO_SCHEMA)
    return [fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)["n"]]


def _protobuf(path: Path) -> Callable[[bytes], list[int]]:
    from google.protobuf.message_factory import GetMessageClass

    from connector.outputs.kafka import schema

    loaded = schema.load(schema.SchemaFile(format="protobuf", path=path))
    event = GetMessageClass(loaded.parsed.descriptor)

    def decode(value: bytes) -> list[int]:
        assert value[0] == 0 and value[5] == 0, "not in the Confluent wire format"
        return [event.FromString(value[6:]).n]

    return decode


def _jaeger(query: str, trace: str) -> Callable[[int], Counter]:
    def read(delivered: int) -> Counter:
        spans = wait_for_trace(query, trace, delivered, timeout=30) if delivered else []
        spans = spans or get_trace(query, trace)
        return Counter(int(s["spanID"], 16) for s in spans)

    return read


def _sink(target: Target) -> Callable[[int], Counter]:
    def read(delivered: int) -> Counter:
        return Counter(id_of(e) for out in target.built for e in out.events)

    return read


# -- the forms -------------------------------------------------------------------------------


def _file(place: Place) -> Target:
    path = place.folder / "events.txt"
    return Target("file", {"path": str(path)}, _lines(path))


def _stdout(place: Place) -> Target:
    def adapt(out: Output) -> None:  # as `connector run > run.out`: its fd, not pytest's
        out.stream = open(place.stdout, "w")  # noqa: SIM115 - closed after the test
        place.request.addfinalizer(out.stream.close)

    return Target("stdout", {}, _lines(place.stdout), adapt=adapt)


def _null(place: Place) -> Target:
    return Target("null")


def _kafka(encoding: str = "raw", schema: bool = False, stall: bool = False, proto: bool = False):
    def setup(place: Place) -> Target:
        topics = place.fixture("kafka_topic")
        bootstrap, topic = topics.bootstrap, topics("battery", create=not stall)
        if stall:  # a broker of the test process's own, paused once the output has started
            broker = place.fixture("private_kafka")
            bootstrap = broker.bootstrap
            create_topic(bootstrap, topic, 1)
        settings: dict = {"bootstrap_servers": bootstrap, "topic": topic}
        decode = _raw
        if encoding != "raw":
            settings["encoding"], decode = encoding, _otlp_proto
        if schema:
            path = place.folder / "event.avsc"
            path.write_text(json.dumps(AVRO_SCHEMA))
            settings["schema_registry"] = {"url": place.fixture("schema_registry")}
            settings["value_schema"] = {"format": "avro", "path": str(path)}
            decode = _avro
        if proto:  # the same event as a Protobuf record
            path = place.folder / "event.proto"
            path.write_text(PROTO_SCHEMA)
            settings["schema_registry"] = {"url": place.fixture("schema_registry")}
            settings["value_schema"] = {"format": "protobuf", "path": str(path)}
            decode = _protobuf(path)
        target = Target("kafka", settings, _topic(bootstrap, topic, decode))
        if stall:
            place.request.addfinalizer(broker.resume)
            read = target.read

            def resume_and_read(delivered: int) -> Counter:
                broker.resume()
                return read(delivered)

            # a small queue: writes wait for room, so the stop deadline is met there
            settings["producer"] = {"queue.buffering.max.messages": 10}
            target.stall_now, target.read, target.blocks = broker.pause, resume_and_read, True
            # a request the paused broker had received is written once it resumes, though
            # the client gave up on it: its events may be in the topic
            target.maybe_written = (PURGED, POSSIBLY_WRITTEN)
        return target

    return setup


def _otlp(protocol: str, stall: bool = False):
    def setup(place: Place) -> Target:
        jaeger = place.fixture("jaeger")
        endpoint = jaeger["otlp_grpc"] if protocol == "grpc" else jaeger["otlp_http"]
        settings: dict = {"endpoint": endpoint, "protocol": protocol}
        target = Target("otlp", settings, _jaeger(jaeger["query"], place.trace))
        if stall:
            proxy = TcpProxy(endpoint)
            proxy.up()
            place.request.addfinalizer(proxy.down)
            host = proxy.address if protocol == "grpc" else f"http://{proxy.address}"
            # a slow attempt, a small queue: the flush deadline, not the attempt's timeout,
            # ends the wait, and writes wait for room
            settings |= {"endpoint": host, "timeout": 120, "queue_size": 1,
                         "batch": {"max_spans": 10, "max_delay": 0.05}}
            target.stall_now, target.blocks = proxy.stall, True
            # stalled mid-run (the second signal's CLI run), a request Jaeger had taken is
            # stored though its answer never comes: its events may be there anyway
            target.maybe_written = (UNDELIVERED,)
        return target

    return setup


def _double(kind: type[ListSink], **options: Any):
    def setup(place: Place) -> Target:
        target = Target(kind.plugin)

        def build(config: OutputConfig, name: str) -> Output:
            out = kind(config, name, **options)
            target.built.append(out)
            return out

        target.double, target.read = build, _sink(target)
        return target

    return setup


# What a bad event is, per output: a line break for file and stdout (one event, one line);
# over message.max.bytes for raw Kafka; not JSON for the OTLP encodings (no span without
# JSON); a schema mismatch for Avro; the chosen event for the failing double. None can be
# bad for null and the list sink: the battery asserts they deliver every hostile event.
FORMS = [
    Form("file", "file", _file, line_break, "holds a line break"),
    Form("stdout", "stdout", _stdout, line_break, "holds a line break"),
    Form("null", "null", _null),
    Form("kafka-raw", "kafka", _kafka(), too_large, "MSG_SIZE_TOO_LARGE: Broker: Message size too large",
         stalled=_kafka(stall=True), private=True),
    Form("kafka-otlp_proto", "kafka", _kafka("otlp_proto"), not_json, "not JSON: cannot map to a span",
         stalled=_kafka("otlp_proto", stall=True), private=True),
    Form("kafka-avro", "kafka", _kafka(schema=True), schema_mismatch, "does not match schema ",
         stalled=_kafka(schema=True, stall=True), private=True),
    Form("kafka-protobuf", "kafka", _kafka(proto=True), schema_mismatch, "does not match schema ",
         stalled=_kafka(proto=True, stall=True), private=True),
    Form("otlp-grpc", "otlp", _otlp("grpc"), not_json, "not JSON: cannot map to a span",
         stalled=_otlp("grpc", stall=True)),
    Form("otlp-http", "otlp", _otlp("http/protobuf"), not_json, "not JSON: cannot map to a span",
         stalled=_otlp("http/protobuf", stall=True)),
    Form("list-sink", ListSink.plugin, _double(ListSink), cli=False,
         stalled=_double(StoppingSink)),
    Form("failing-sink", FailingSink.plugin,
         _double(FailingSink, events=lambda e: '"bad": true' in e), chosen,
         "refused by the sink", cli=False, stalled=_double(StoppingSink)),
]

