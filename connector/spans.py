"""Span JSON -> OTLP, and trace integrity checks.

Events are JSON objects shaped like the seed's tracing example (`trace_id`,
`span_id`, `parent_span_id`, `service`, `operation`, `start_time`,
`duration_ms`, `status`, `error_message`); every field name can be remapped.
Spans are written straight to OTLP's protobuf wire format: building SDK
ReadableSpans and running the SDK's encoder measured ~22,000 spans/s here,
opentelemetry-proto message objects ~100,000, and these bytes several times
that. Tests decode them with opentelemetry-proto to prove they are the same.
"""

from __future__ import annotations

import base64
import struct
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any

import orjson
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from connector import __version__
from connector.fields import Strict

__all__ = [
    "MappingError",
    "SpanMapping",
    "TraceChecker",
    "encode_span",
    "export_request",
    "group_spans",
    "otlp_encoder",
]

_STATUS = {
    "OK": Status.STATUS_CODE_OK,
    "ERROR": Status.STATUS_CODE_ERROR,
    "UNSET": Status.STATUS_CODE_UNSET,
}
_ZEROS = {8: bytes(8), 16: bytes(16)}
_MAX_NANOS = 2**64 - 1
_KINDS = {name.removeprefix("SPAN_KIND_"): value for name, value in Span.SpanKind.items()}


class SpanMapping(Strict):
    """Which event field holds each span field."""

    trace_id: str = "trace_id"
    span_id: str = "span_id"
    parent_span_id: str = "parent_span_id"
    service: str = "service"
    operation: str = "operation"
    start_time: str = "start_time"
    duration_ms: str = "duration_ms"
    end_time: str = "end_time"
    status: str = "status"
    error_message: str = "error_message"
    kind: str = "kind"
    attributes: str = "attributes"
    resource: str = "resource"

    @cached_property
    def known(self) -> frozenset[str]:
        """The mapped field names: every other field becomes a span attribute."""
        return frozenset(self.model_dump().values())


DEFAULT_MAPPING = SpanMapping()


class MappingError(ValueError):
    """This event cannot become a span. `reason` names the field and the rule (a bounded
    set, fit for a metric label); the message adds the offending value."""

    def __init__(self, reason: str, *got: Any):
        super().__init__(reason, *got)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason}, got {self.args[1]!r}" if len(self.args) > 1 else self.reason

    @property
    def detail(self) -> str | None:
        return f"got {self.args[1]!r}" if len(self.args) > 1 else None


def _id(doc: dict, name: str, size: int, required: bool = True) -> bytes:
    value = doc.get(name)
    if value is None or value == "":
        if required:
            raise MappingError(f"field '{name}' is missing")
        return b""
    if not isinstance(value, str) or len(value) != size * 2:
        raise MappingError(f"field '{name}' must be {size * 2} hex characters", value)
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise MappingError(f"field '{name}' is not hex", value) from None
    if len(raw) != size:  # fromhex skips whitespace: "ab cd" is not an id
        raise MappingError(f"field '{name}' is not hex", value)
    if raw == _ZEROS[size]:
        raise MappingError(f"field '{name}' is all zeros, which OTLP treats as invalid")
    return raw


def _nanos(doc: dict, name: str) -> int:
    value = doc.get(name)
    if value is None:
        raise MappingError(f"field '{name}' is missing")
    if value.__class__ in (int, float):  # not bool: True is no time
        nanos = value * 1_000_000_000  # seconds since the epoch
        # checked before int(): a float may be inf (1e300 s), which int() cannot take
        if not 0 <= nanos <= _MAX_NANOS:
            raise MappingError(f"field '{name}' is outside what OTLP can carry (1970-2554)", value)
        return int(nanos)
    else:
        try:
            ts = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise MappingError(f"field '{name}' is not an ISO-8601 time", value) from None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        # whole seconds from the float (exact: a fraction never rounds up a second) + micros
        nanos = int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000
    if not 0 <= nanos <= _MAX_NANOS:
        raise MappingError(f"field '{name}' is outside what OTLP can carry (1970-2554)", value)
    return nanos


# -- protobuf wire format: tag bytes are (field number << 3) | wire type -----------------

_Q = struct.Struct("<Q").pack  # fixed64
_D = struct.Struct("<d").pack  # double


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes or a nested message."""
    return tag + _varint(len(payload)) + payload


def _any(value: Any) -> bytes:
    """An AnyValue message."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):  # past int64, keep the digits rather than fail the span
        if -(2**63) <= value < 2**63:
            return b"\x18" + _varint(value % 2**64)  # negatives: two's complement, 10 bytes
        return _field(b"\x0a", str(value).encode())
    if isinstance(value, float):
        return b"\x21" + _D(value)
    if isinstance(value, list | tuple):  # ArrayValue{values = 1}
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any(v)) for v in value))
    if isinstance(value, dict):  # KeyValueList{values = 1}
        return _field(b"\x32", b"".join(_field(b"\x0a", kv) for kv in _attributes(value)))
    return _field(b"\x0a", str(value).encode())


def _attributes(items: dict) -> list[bytes]:
    """KeyValue messages {key = 1, value = 2}; null values are dropped."""
    return [
        _field(b"\x0a", str(k).encode()) + _field(b"\x12", _any(v))
        for k, v in items.items()
        if v is not None
    ]


@lru_cache(maxsize=4096)  # span names and statuses repeat: encode each once
def _name_field(name: str) -> bytes:
    return _field(b"\x2a", name.encode())


@lru_cache(maxsize=4096)
def _status_field(code: int, message: bytes | None) -> bytes:
    """Span.status (15): Status {message 2, code 3}."""
    body = (_field(b"\x12", message) if message else b"") + (
        b"\x18" + bytes((code,)) if code else b""
    )
    return _field(b"\x7a", body)


_SCOPE = _field(b"\x0a", b"connector") + _field(b"\x12", __version__.encode())


_IDS = struct.Struct("<2s16s2s8s2s8s").pack  # trace_id 1, span_id 2, parent_span_id 4
_TIMES = struct.Struct("<cQcQ").pack  # start 7, end 8 (fixed64)
_INTERNAL = b"\x30\x01"  # kind 6
_fromiso = datetime.fromisoformat


def encode_span(doc: Any, m: SpanMapping = DEFAULT_MAPPING) -> tuple[tuple, bytes, bytes]:
    """(resource key, trace id, Span message bytes) for one event, or MappingError.

    The common shape (the seed's spans: ISO start, duration, a status, no extra fields)
    takes a short path that checks as it goes; anything else, valid or not, takes the
    full one, which also words the errors. Tests hold both to the same bytes.
    """
    try:
        op, svc, start, duration = (
            doc[m.operation],
            doc[m.service],
            doc[m.start_time],
            doc[m.duration_ms],
        )
        status = doc.get(m.status)
        code = 0 if status is None else _STATUS[status]
        if (
            op.__class__ is not str
            or not op
            or svc.__class__ is not str
            or not svc
            or duration.__class__ not in (int, float)
            or len(doc.keys() - m.known)
            or doc.get(m.end_time) is not None
            or doc.get(m.kind) is not None
            or doc.get(m.attributes) is not None
            or doc.get(m.resource) is not None
            or doc.get(m.error_message)
        ):
            raise LookupError
        ts = _fromiso(start)
        if ts.tzinfo is None:
            raise LookupError
        begin = int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000
        end = begin + round(duration * 1_000_000)
        trace_id, span_id = bytes.fromhex(doc[m.trace_id]), bytes.fromhex(doc[m.span_id])
        parent = doc.get(m.parent_span_id)
        if parent is not None:
            parent = bytes.fromhex(parent)
        if (
            len(trace_id) != 16
            or len(span_id) != 8
            or trace_id == _ZEROS[16]
            or span_id == _ZEROS[8]
            or not 0 <= begin <= end <= _MAX_NANOS
            or (parent is not None and (len(parent) != 8 or parent == _ZEROS[8]))
        ):
            raise LookupError
    except (LookupError, TypeError, ValueError, AttributeError, OverflowError):
        return _encode_checked(doc, m)
    ids = (
        _IDS(b"\x0a\x10", trace_id, b"\x12\x08", span_id, b"\x22\x08", parent)
        if parent
        else b"\x0a\x10" + trace_id + b"\x12\x08" + span_id
    )
    parts = [ids, _name_field(op), _INTERNAL, _TIMES(b"\x39", begin, b"\x41", end)]
    if code:
        parts.append(_status_field(code, None))
    return (svc,), trace_id, b"".join(parts)


def _encode_checked(doc: Any, m: SpanMapping) -> tuple[tuple, bytes, bytes]:
    """encode_span for any shape: every field checked, every mistake worded."""
    if not isinstance(doc, dict):
        raise MappingError("event is not a JSON object")
    name = doc.get(m.operation)
    if not isinstance(name, str) or not name:
        raise MappingError(f"field '{m.operation}' is missing")
    service = doc.get(m.service)
    if not isinstance(service, str) or not service:
        raise MappingError(f"field '{m.service}' is missing")
    start = _nanos(doc, m.start_time)
    if doc.get(m.end_time) is not None:
        end = _nanos(doc, m.end_time)
    else:
        duration = doc.get(m.duration_ms)
        if not isinstance(duration, int | float) or isinstance(duration, bool):
            raise MappingError(f"field '{m.duration_ms}' (or '{m.end_time}') is missing")
        end = start + _duration_nanos(duration, m.duration_ms)
        if end > _MAX_NANOS:
            raise MappingError(f"field '{m.duration_ms}' is too large", duration)
    if end < start:
        raise MappingError("the span ends before it starts")
    trace_id = _id(doc, m.trace_id, 16)
    parent = _id(doc, m.parent_span_id, 8, required=False)
    # Span: trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6, start 7, end 8,
    # attributes 9, events 11, status 15
    parts = [b"\x0a\x10", trace_id, b"\x12\x08", _id(doc, m.span_id, 8)]
    if parent:
        parts += (b"\x22\x08", parent)
    parts.append(_name_field(name))
    kind = doc.get(m.kind)
    if kind is None:
        parts.append(b"\x30\x01")  # INTERNAL
    else:
        value = _KINDS.get(str(kind).upper().removeprefix("SPAN_KIND_"))
        if value is None:
            raise MappingError(f"field '{m.kind}' is not a span kind", kind)
        if value:
            parts += (b"\x30", bytes((value,)))
    parts += (b"\x39", _Q(start), b"\x41", _Q(end))
    extra = doc.keys() - m.known  # a set difference in C: usually empty
    attributes = doc.get(m.attributes)
    if attributes is not None and not isinstance(attributes, dict):
        raise MappingError(f"field '{m.attributes}' must be an object")
    if extra or attributes:
        merged = {k: v for k, v in doc.items() if k in extra} | (attributes or {})
        parts += (_field(b"\x4a", kv) for kv in _attributes(merged))
    status, code = doc.get(m.status), 0
    if status is not None:
        if not isinstance(status, str):  # a list or object is no status (and unhashable)
            raise MappingError(f"field '{m.status}' must be OK, ERROR or UNSET", status)
        code = _STATUS.get(status)
        if code is None:
            code = _STATUS.get(str(status).upper().removeprefix("STATUS_CODE_"))
        if code is None:
            raise MappingError(f"field '{m.status}' must be OK, ERROR or UNSET", status)
    message = doc.get(m.error_message) or None  # [] or {}: no message, as on the short path
    if message:  # an `exception` event {time 1, name 2, attributes 3}, and the status message
        message = str(message).encode()
        attribute = _field(b"\x0a", b"exception.message") + _field(
            b"\x12", _field(b"\x0a", message)
        )
        parts.append(
            _field(
                b"\x5a",
                b"\x09" + _Q(end) + _field(b"\x12", b"exception") + _field(b"\x1a", attribute),
            )
        )
    if code or message:
        parts.append(_status_field(code, message))
    resource = doc.get(m.resource)
    if resource is None:
        return (service,), trace_id, b"".join(parts)
    if not isinstance(resource, dict):
        raise MappingError(f"field '{m.resource}' must be an object")
    attrs = (
        (str(k), orjson.dumps(v))
        for k, v in resource.items()
        if v is not None and k != "service.name"  # the service field wins
    )
    return (service, *sorted(attrs)), trace_id, b"".join(parts)


def _duration_nanos(duration: int | float, name: str) -> int:
    """duration_ms -> nanoseconds; MappingError where round() would overflow (1e303)."""
    nanos = duration * 1_000_000
    if not nanos <= _MAX_NANOS:  # also inf, and nan
        raise MappingError(f"field '{name}' is too large", duration)
    if nanos < -_MAX_NANOS:  # -inf; a small negative still rounds as the short path does
        raise MappingError("the span ends before it starts")
    return round(nanos)


def export_request(grouped: dict[tuple, list[bytes]]) -> bytes:
    """An ExportTraceServiceRequest; one ResourceSpans per service (and resource attributes).

    ExportTraceServiceRequest{resource_spans 1}; ResourceSpans{resource 1, scope_spans 2};
    Resource{attributes 1}; ScopeSpans{scope 1, spans 2}.
    """
    out = []
    for (service, *resource), spans in grouped.items():
        attributes = _attributes({"service.name": service})
        attributes += _attributes({k: orjson.loads(v) for k, v in resource})
        resource_message = b"".join(_field(b"\x0a", kv) for kv in attributes)
        scope_spans = _field(b"\x0a", _SCOPE) + b"".join(_field(b"\x12", s) for s in spans)
        out.append(
            _field(b"\x0a", _field(b"\x0a", resource_message) + _field(b"\x12", scope_spans))
        )
    return b"".join(out)


def _otlp_json(request: bytes) -> bytes:
    """OTLP/JSON: protobuf's JSON mapping, except ids are hex and enums are numbers."""
    doc = MessageToDict(ExportTraceServiceRequest.FromString(request), use_integers_for_enums=True)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return orjson.dumps(doc)


Encoder = Callable[[list[str], Callable], Iterator[tuple[str, bytes, list[str]]]]
MESSAGE_TOO_LARGE = "span too large for one message (message.max.bytes)"


def otlp_encoder(
    encoding: str, mapping: SpanMapping = DEFAULT_MAPPING, max_bytes: int = 0
) -> Encoder:
    """For Kafka: events -> (trace id hex, serialized request, the events it carries).

    One message per trace; a trace whose request is over `max_bytes` (0: no limit) is
    split over several messages with the same key, each a whole ExportTraceServiceRequest.
    """
    serialize = _otlp_json if encoding == "otlp_json" else bytes

    def encode(events: list[str], fail: Callable) -> Iterator[tuple[str, bytes, list[str]]]:
        traces: dict[bytes, tuple[dict, list[str], list[tuple]]] = {}
        for event in events:
            try:
                key, trace_id, span = encode_span(orjson.loads(event), mapping)
            except (orjson.JSONDecodeError, MappingError) as exc:
                fail(mapping_reason(exc), event, detail=mapping_detail(exc))
                continue
            except Exception as exc:  # a defect in the mapping still fails one event alone
                fail(unexpected_reason(exc), event, detail=str(exc)[:200])
                continue
            trace = traces.get(trace_id)
            if trace is None:
                trace = traces[trace_id] = ({}, [], [])
            grouped, members, keys = trace
            group = grouped.get(key)
            if group is None:
                group = grouped[key] = []
            group.append(span)
            members.append(event)
            keys.append(key)  # which group each member's span is in, should the trace split
        for trace_id, (grouped, members, keys) in traces.items():
            payload = serialize(export_request(grouped))
            if max_bytes and len(payload) > max_bytes:
                parts = _split(trace_id.hex(), grouped, members, keys, serialize, max_bytes, fail)
                yield from parts
            else:
                yield trace_id.hex(), payload, members

    return encode


def _split(
    trace_hex: str,
    grouped: dict[tuple, list[bytes]],
    members: list[str],
    keys: list[tuple],
    serialize: Callable,
    limit: int,
    fail: Callable,
) -> Iterator[tuple[str, bytes, list[str]]]:
    """A trace over the limit: its (key, span, event) in the order the events came."""
    taken = dict.fromkeys(grouped, 0)
    spans = []
    for key, event in zip(keys, members, strict=True):
        spans.append((key, grouped[key][taken[key]], event))
        taken[key] += 1
    yield from _messages(trace_hex, spans, serialize, limit, fail)


def _messages(
    trace_hex: str, spans: list, serialize: Callable, limit: int, fail: Callable
) -> Iterator[tuple[str, bytes, list[str]]]:
    """One trace's spans -> messages of at most `limit` bytes."""
    grouped: dict[tuple, list[bytes]] = {}
    for key, span, _ in spans:
        group = grouped.get(key)
        if group is None:
            group = grouped[key] = []
        group.append(span)
    request = export_request(grouped)
    payload = serialize(request)
    if not limit or len(payload) <= limit:
        yield trace_hex, payload, [event for _, _, event in spans]
        return
    if len(spans) == 1:
        detail = f"its message is {len(payload)} bytes, over {limit}"
        fail(MESSAGE_TOO_LARGE, spans[0][2], detail=detail)
        return
    # Cut by span size scaled to the serialized size (otlp_json is larger than the
    # protobuf), with headroom for the resource groups; halve a part that still overflows.
    budget = limit * len(request) / len(payload) * 0.95
    parts, part, size = [], [], 0
    for item in spans:
        n = len(item[1]) + 6  # the span, its tag and length
        if part and size + n > budget:
            parts.append(part)
            part, size = [], 0
        part.append(item)
        size += n
    parts.append(part)
    if len(parts) == 1:
        half = len(spans) // 2
        parts = [spans[:half], spans[half:]]
    for part in parts:
        yield from _messages(trace_hex, part, serialize, limit, fail)


def unexpected_reason(exc: Exception) -> str:
    """Bounded: the exception's type, never its message (that goes to the detail)."""
    return f"cannot map to a span: unexpected {type(exc).__name__}"


def mapping_detail(exc: Exception) -> str | None:
    return exc.detail if isinstance(exc, MappingError) else str(exc)


def mapping_reason(exc: Exception) -> str:
    """The bounded reason (a metric label) for an event that is no span."""
    if isinstance(exc, MappingError):
        return f"cannot map to a span: {exc.reason}"
    return "not JSON: cannot map to a span"


# -- trace integrity ------------------------------------------------------------


@dataclass
class TraceReport:
    trace_id: str
    spans: int
    roots: int
    orphans: int  # spans whose parent is not in the trace
    early: int  # children that start before their parent
    late: int  # children that end after their parent

    @property
    def broken(self) -> bool:
        return bool(self.roots != 1 or self.orphans or self.early or self.late)

    def __str__(self) -> str:
        verdict = "BROKEN" if self.broken else "ok"
        return (
            f"trace {self.trace_id}: {self.spans} spans, {self.roots} root(s), "
            f"{self.orphans} orphan(s), {self.early} start before parent, "
            f"{self.late} end after parent: {verdict}"
        )


@dataclass
class TraceChecker:
    """Collects spans by trace and checks each tree once it is complete (or evicted)."""

    mapping: SpanMapping = DEFAULT_MAPPING
    max_open: int = 10_000
    open: OrderedDict[str, list[dict]] = field(default_factory=OrderedDict)
    reports: list[TraceReport] = field(default_factory=list)
    unreadable: int = 0

    def add(self, events: list[str]) -> None:
        m = self.mapping
        for event in events:
            try:
                doc = orjson.loads(event)
                trace_id = doc[m.trace_id]
                # the ids are dict keys here and in _check: a list or object id is unreadable
                hash((trace_id, doc.get(m.span_id), doc.get(m.parent_span_id)))
            except (orjson.JSONDecodeError, KeyError, TypeError):  # TypeError: unhashable id
                self.unreadable += 1
                continue
            self.open.setdefault(trace_id, []).append(doc)
        while len(self.open) > self.max_open:
            self._check(*self.open.popitem(last=False))

    def finish(self) -> list[TraceReport]:
        while self.open:
            self._check(*self.open.popitem(last=False))
        return self.reports

    def _check(self, trace_id: str, docs: list[dict]) -> None:
        m = self.mapping
        by_id = {d.get(m.span_id): d for d in docs}
        roots = orphans = early = late = 0
        for d in docs:
            parent_id = d.get(m.parent_span_id)
            if not parent_id:
                roots += 1
                continue
            parent = by_id.get(parent_id)
            if parent is None:
                orphans += 1
                continue
            try:
                start, end = _window(d, m)
                p_start, p_end = _window(parent, m)
            except (MappingError, KeyError, TypeError, ValueError, OverflowError):
                continue  # no usable times: the tree checks above still count
            early += start < p_start
            late += end > p_end
        self.reports.append(TraceReport(str(trace_id), len(docs), roots, orphans, early, late))

    def summary(self) -> str:
        broken = [r for r in self.reports if r.broken]
        orphans = sum(r.orphans for r in self.reports)
        line = (
            f"traces: {len(self.reports)} checked, {len(broken)} broken ({orphans} orphan span(s))"
        )
        return line + (
            f", {self.unreadable} event(s) without a trace id" if self.unreadable else ""
        )


def _window(doc: dict, m: SpanMapping) -> tuple[int, int]:
    start = _nanos(doc, m.start_time)
    if doc.get(m.end_time) is not None:
        return start, _nanos(doc, m.end_time)
    return start, start + _duration_nanos(float(doc[m.duration_ms]), m.duration_ms)


def group_spans(spans: list[tuple[tuple, bytes, bytes]]) -> dict[tuple, list[bytes]]:
    """encode_span results -> {resource key: span messages}, for export_request."""
    grouped: dict[tuple, list[bytes]] = defaultdict(list)
    for key, _, span in spans:
        grouped[key].append(span)
    return grouped
