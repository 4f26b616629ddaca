"""Trace integrity: orphans, roots, and children outside their parent's time."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import orjson

from connector.otlp.mapping import (
    DEFAULT_MAPPING,
    MappingError,
    SpanMapping,
    duration_nanos,
    parse_nanos,
)

__all__ = ["TraceChecker", "TraceReport"]


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
    start = parse_nanos(doc, m.start_time)
    if doc.get(m.end_time) is not None:
        return start, parse_nanos(doc, m.end_time)
    return start, start + duration_nanos(float(doc[m.duration_ms]), m.duration_ms)
