"""OTLP JSON requests (one per line, as the Collector's file exporter and the kafka
exporter's otlp_json write them) -> records: a trace (its spans, grouped by trace id
within a request), a log record, or a metric point; rendered as the connector's own
span / log / metric JSON events, which every output (otlp, kafka otlp_*) maps back."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, tzinfo
from typing import Any

import orjson

from connector.replay.records import BadRecord, Ids, Record
from connector.replay.times import EPOCH, from_nanos, nanos
from connector.values import dumps

__all__ = ["SIGNAL_KEYS", "OtlpRecords", "render_otlp"]

SIGNAL_KEYS = {"traces": "resourceSpans", "logs": "resourceLogs", "metrics": "resourceMetrics"}
_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def _value(v: dict) -> Any:
    """An OTLP AnyValue in JSON as a plain JSON value."""
    if not isinstance(v, dict) or not v:
        return None
    (kind, value), *_ = v.items()
    if kind == "intValue":
        return int(value)
    if kind == "doubleValue":
        return float(value)
    if kind == "arrayValue":
        return [_value(x) for x in (value or {}).get("values", [])]
    if kind == "kvlistValue":
        return _attrs((value or {}).get("values", []))
    return value  # stringValue, boolValue, bytesValue (base64 text)


def _attrs(items: Iterable[dict] | None) -> dict:
    return {kv["key"]: _value(kv.get("value", {})) for kv in items or ()}


def _resource(block: dict) -> tuple[str, dict]:
    attrs = _attrs(block.get("resource", {}).get("attributes"))
    service = attrs.pop("service.name", None)
    return (service if isinstance(service, str) and service else "unknown_service"), attrs


def _iso(value: int) -> str:
    return (EPOCH + timedelta(microseconds=value // 1000)).isoformat()


class OtlpRecords:
    """Records from request lines: `parse(text, where)` yields the records of one request."""

    def __init__(self, signal: str):
        self.signal, self.key = signal, SIGNAL_KEYS[signal]

    def parse(self, text: bytes | str, where: str) -> Iterator[Record]:
        try:
            request = orjson.loads(text)
        except ValueError as exc:  # orjson's JSONDecodeError is one
            yield BadRecord(None, where, f"not JSON ({exc})")
            return
        if not isinstance(request, dict):
            yield BadRecord(None, where, "not an OTLP JSON request (not an object)")
            return
        if self.key not in request:
            other = next((s for s, k in SIGNAL_KEYS.items() if k in request), None)
            what = f"an OTLP {other} request" if other else "no OTLP request"
            yield BadRecord(None, where, f"{what}, not {self.signal}")
            return
        read = {"traces": self._traces, "logs": self._logs, "metrics": self._metrics}
        try:
            yield from read[self.signal](request[self.key], where)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            yield BadRecord(None, where, f"malformed OTLP {self.signal} request ({exc!r:.200})")

    def _traces(self, blocks: list, where: str) -> Iterator[Record]:
        traces: dict[str, list] = {}  # trace id -> [(service, resource, span)], first seen first
        for block in blocks:
            service, resource = _resource(block)
            for scope in block.get("scopeSpans", ()):
                for span in scope.get("spans", ()):
                    traces.setdefault(span["traceId"], []).append((service, resource, span))
        for spans in traces.values():
            root = min(int(s["startTimeUnixNano"]) for _, _, s in spans)
            yield Record(from_nanos(root), (root, spans), where)

    def _logs(self, blocks: list, where: str) -> Iterator[Record]:
        for block in blocks:
            service, resource = _resource(block)
            for scope in block.get("scopeLogs", ()):
                for log in scope.get("logRecords", ()):
                    t = int(log.get("timeUnixNano") or log.get("observedTimeUnixNano") or 0)
                    yield Record(from_nanos(t), (service, resource, log), where)

    def _metrics(self, blocks: list, where: str) -> Iterator[Record]:
        for block in blocks:
            service, resource = _resource(block)
            for scope in block.get("scopeMetrics", ()):
                for metric in scope.get("metrics", ()):
                    kind = next((k for k in ("gauge", "sum") if k in metric), None)
                    if kind is None:  # histograms and summaries: not events the outputs map
                        yield BadRecord(None, where, f"metric {metric.get('name')!r}: only "
                                                     "gauge and sum points replay")
                        continue
                    for point in metric[kind].get("dataPoints", ()):
                        t = int(point["timeUnixNano"])
                        yield Record(from_nanos(t), (service, resource, metric["name"], point),
                                     where)


def render_otlp(signal: str, record: Record, new_time: datetime, ids: Ids | None,
                tz: tzinfo) -> list[str]:
    if signal == "traces":
        return _render_trace(record, new_time, ids)
    if signal == "logs":
        service, resource, log = record.data
        doc = {"timestamp": new_time.isoformat(), "service": service}
        if log.get("severityText"):
            doc["severity"] = log["severityText"]
        elif log.get("severityNumber"):
            doc["severity"] = int(log["severityNumber"])
        if "body" in log:
            doc["body"] = _value(log["body"])
        for name, key, kind in (("trace_id", "traceId", ids and ids.trace),
                                ("span_id", "spanId", ids and ids.span)):
            if log.get(key):
                doc[name] = kind(log[key]) if kind else log[key]
        _extra(doc, _attrs(log.get("attributes")), resource)
        return [dumps(doc)]
    service, resource, name, point = record.data
    value = point.get("asDouble", point.get("asInt"))
    doc = {"timestamp": new_time.isoformat(), "service": service, "name": name,
           "value": float(value) if "asDouble" in point else int(value or 0)}
    _extra(doc, _attrs(point.get("attributes")), resource)
    return [dumps(doc)]


def _extra(doc: dict, attributes: dict, resource: dict) -> None:
    if attributes:
        doc["attributes"] = attributes
    if resource:
        doc["resource"] = resource


def _render_trace(record: Record, new_time: datetime, ids: Ids | None) -> list[str]:
    root, spans = record.data
    shift = nanos(new_time) - root  # every span keeps its offset from the root
    trace = _Memo(ids.trace) if ids else _same
    span_id = _Memo(ids.span) if ids else _same  # a parent's id is renewed once
    out = []
    for service, resource, s in spans:
        start, end = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
        doc: dict[str, Any] = {
            "trace_id": trace(s["traceId"]),
            "span_id": span_id(s["spanId"]),
            "service": service,
            "operation": s.get("name", ""),
            "start_time": _iso(start + shift),
            "duration_ms": (end - start) / 1_000_000,
        }
        if s.get("parentSpanId"):
            doc["parent_span_id"] = span_id(s["parentSpanId"])
        # what an absent field means anyway (status UNSET, kind INTERNAL) is left out: the
        # outputs then take their short path for the common span
        status = s.get("status") or {}
        code = int(status.get("code", 0))
        if code:
            doc["status"] = _STATUS.get(code, "UNSET")
        if status.get("message"):
            doc["error_message"] = status["message"]
        if s.get("kind") and int(s["kind"]) != 1:
            doc["kind"] = _KINDS.get(int(s["kind"]), "INTERNAL")
        if s.get("links"):
            doc["links"] = [
                {"trace_id": trace(k["traceId"]), "span_id": span_id(k["spanId"]),
                 "attributes": _attrs(k.get("attributes"))}
                for k in s["links"]
            ]
        if s.get("events"):
            doc["events"] = [
                {"name": e.get("name", ""), "time": _iso(int(e["timeUnixNano"]) + shift),
                 "attributes": _attrs(e.get("attributes"))}
                for e in s["events"]
            ]
        _extra(doc, _attrs(s.get("attributes")), resource)
        out.append(dumps(doc))
    return out


def _same(value: str) -> str:
    return value


class _Memo(dict):
    """One record's old id -> new id: each id is hashed once however often it appears."""

    def __init__(self, fresh: Callable[[str], str]):
        super().__init__()
        self.fresh = fresh

    def __call__(self, old: str) -> str:
        new = self.get(old)
        if new is None:
            new = self[old] = self.fresh(old)
        return new
