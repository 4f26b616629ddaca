"""Span JSON -> OTLP Span messages, and the ExportTraceServiceRequest around them.

Events are shaped like the seed's tracing example (`trace_id`, `span_id`,
`parent_span_id`, `service`, `operation`, `start_time`, `duration_ms`, `status`,
`error_message`), with optional `links` and `events` lists. Spans are written straight
to the wire format (wire.py): SDK ReadableSpans through the SDK's encoder measured
~22,000 spans/s here, opentelemetry-proto message objects ~100,000, these bytes several
times that.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from datetime import datetime
from functools import lru_cache
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from connector.otlp.mapping import (
    DEFAULT_MAPPING,
    MAX_NANOS,
    MappingError,
    SpanMapping,
    duration_nanos,
    extra_attributes,
    parse_id,
    parse_nanos,
    parse_object,
)
from connector.otlp.wire import attributes, field, fixed64, request, resource_key

__all__ = ["encode_span", "export_request", "group_spans", "span_window"]

_STATUS = {
    "OK": Status.STATUS_CODE_OK,
    "ERROR": Status.STATUS_CODE_ERROR,
    "UNSET": Status.STATUS_CODE_UNSET,
}
_ZEROS = {8: bytes(8), 16: bytes(16)}
_KINDS = {name.removeprefix("SPAN_KIND_"): value for name, value in Span.SpanKind.items()}


@lru_cache(maxsize=4096)  # span names and statuses repeat: encode each once
def _name_field(name: str) -> bytes:
    return field(b"\x2a", name.encode())


@lru_cache(maxsize=4096)
def _status_field(code: int, message: bytes | None) -> bytes:
    """Span.status (15): Status {message 2, code 3}."""
    body = (field(b"\x12", message) if message else b"") + (
        b"\x18" + bytes((code,)) if code else b""
    )
    return field(b"\x7a", body)


_IDS = struct.Struct("<2s16s2s8s2s8s").pack  # trace_id 1, span_id 2, parent 4
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
            or doc.get(m.links) is not None
            or doc.get(m.events) is not None
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
            or not 0 <= begin <= end <= MAX_NANOS
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
    start, end = span_window(doc, m)
    trace_id = parse_id(doc, m.trace_id, 16)
    parent = parse_id(doc, m.parent_span_id, 8, required=False)
    # Span: trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6, start 7, end 8,
    # attributes 9, events 11, links 13, status 15
    parts = [b"\x0a\x10", trace_id, b"\x12\x08", parse_id(doc, m.span_id, 8)]
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
    parts += (b"\x39", fixed64(start), b"\x41", fixed64(end))
    merged = extra_attributes(doc, m.known, parse_object(doc, m.attributes))
    if merged:
        parts += (field(b"\x4a", kv) for kv in attributes(merged))
    status, code = doc.get(m.status), 0
    if status is not None:
        if not isinstance(status, str):  # a list or object is no status (and unhashable)
            raise MappingError(f"field '{m.status}' must be OK, ERROR or UNSET", status)
        code = _STATUS.get(status)
        if code is None:
            code = _STATUS.get(str(status).upper().removeprefix("STATUS_CODE_"))
        if code is None:
            raise MappingError(f"field '{m.status}' must be OK, ERROR or UNSET", status)
    if doc.get(m.events) is not None:
        parts += _events(doc[m.events], m.events)
    message = doc.get(m.error_message) or None  # [] or {}: no message, as on the short path
    if message:  # an `exception` event {time 1, name 2, attributes 3}, and the status message
        message = str(message).encode()
        attribute = field(b"\x0a", b"exception.message") + field(b"\x12", field(b"\x0a", message))
        parts.append(
            field(
                b"\x5a",
                b"\x09" + fixed64(end) + field(b"\x12", b"exception") + field(b"\x1a", attribute),
            )
        )
    if doc.get(m.links) is not None:
        parts += _links(doc[m.links], m.links)
    if code or message:
        parts.append(_status_field(code, message))
    resource = parse_object(doc, m.resource)
    return resource_key(service, resource), trace_id, b"".join(parts)


def _links(links: Any, name: str) -> list[bytes]:
    """Span.links (13): Link{trace_id 1, span_id 2, attributes 4} per {trace_id, span_id,
    attributes} object."""
    if not isinstance(links, list):
        raise MappingError(f"field '{name}' must be a list of {{trace_id, span_id, attributes}}")
    out = []
    for link in links:
        if not isinstance(link, dict):
            raise MappingError(
                f"field '{name}' must be a list of {{trace_id, span_id, attributes}}"
            )
        try:
            body = [
                b"\x0a\x10",
                parse_id(link, "trace_id", 16),
                b"\x12\x08",
                parse_id(link, "span_id", 8),
            ]
            attrs = parse_object(link, "attributes")
        except MappingError as exc:
            raise MappingError(f"field '{name}': {exc.reason}", *exc.args[1:]) from None
        if attrs:
            body += (field(b"\x22", kv) for kv in attributes(attrs))
        out.append(field(b"\x6a", b"".join(body)))
    return out


def _events(events: Any, name: str) -> list[bytes]:
    """Span.events (11): Event{time 1, name 2, attributes 3} per {name, time, attributes}."""
    if not isinstance(events, list):
        raise MappingError(f"field '{name}' must be a list of {{name, time, attributes}}")
    out = []
    for event in events:
        if not isinstance(event, dict):
            raise MappingError(f"field '{name}' must be a list of {{name, time, attributes}}")
        title = event.get("name")
        if not isinstance(title, str) or not title:
            raise MappingError(f"field '{name}': field 'name' is missing")
        try:
            when = parse_nanos(event, "time")
            attrs = parse_object(event, "attributes")
        except MappingError as exc:
            raise MappingError(f"field '{name}': {exc.reason}", *exc.args[1:]) from None
        body = b"\x09" + fixed64(when) + field(b"\x12", title.encode())
        if attrs:
            body += b"".join(field(b"\x1a", kv) for kv in attributes(attrs))
        out.append(field(b"\x5a", body))
    return out


def span_window(doc: dict, m: SpanMapping) -> tuple[int, int]:
    """(start, end) in Unix nanoseconds, from start_time plus end_time or duration_ms."""
    start = parse_nanos(doc, m.start_time)
    if doc.get(m.end_time) is not None:
        end = parse_nanos(doc, m.end_time)
    else:
        duration = doc.get(m.duration_ms)
        if not isinstance(duration, int | float) or isinstance(duration, bool):
            raise MappingError(f"field '{m.duration_ms}' (or '{m.end_time}') is missing")
        end = start + duration_nanos(duration, m.duration_ms)
        if end > MAX_NANOS:
            raise MappingError(f"field '{m.duration_ms}' is too large", duration)
    if end < start:
        raise MappingError("the span ends before it starts")
    return start, end


def export_request(grouped: dict[tuple, list[bytes]]) -> bytes:
    """An ExportTraceServiceRequest; one ResourceSpans per service (and resource attributes)."""
    return request(grouped)


def group_spans(spans: list[tuple[tuple, bytes, bytes]]) -> dict[tuple, list[bytes]]:
    """encode_span results -> {resource key: span messages}, for export_request."""
    grouped: dict[tuple, list[bytes]] = defaultdict(list)
    for key, _, span in spans:
        grouped[key].append(span)
    return grouped
