"""The trace check, a run feature (`check_traces`, `preview --check-traces`): orphans,
roots, and children outside their parent's time.

`TraceCheck` is what a run or a preview uses: it knows which output's spans to read (the
first one sending traces over OTLP) and feeds them to a `TraceChecker`, which collects
spans by trace and checks each tree once it is complete.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from connector.otlp.mapping import (
    DEFAULT_MAPPING,
    MappingError,
    SpanMapping,
    duration_nanos,
    parse_nanos,
)
from connector.outputs.base import parse_event

if TYPE_CHECKING:
    from connector.config import Config
    from connector.outputs.base import Batch

__all__ = ["TraceCheck", "TraceChecker", "TraceReport", "summary", "traced_output"]


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
        return summary(self.reports, self.unreadable)


def summary(reports: list[TraceReport], unreadable: int) -> str:
    """The one-line verdict over checked traces."""
    broken = [r for r in reports if r.broken]
    orphans = sum(r.orphans for r in reports)
    line = f"traces: {len(reports)} checked, {len(broken)} broken ({orphans} orphan span(s))"
    return line + (f", {unreadable} event(s) without a trace id" if unreadable else "")


def traced_output(config: Config) -> int | None:
    """The output whose spans the trace check reads (as Config.span_mapping() picks it):
    the first one sending traces over OTLP. None: none does."""
    return next((k for k, e in enumerate(config.output) if e.settings.spans() is not None), None)


class TraceCheck:
    """check_traces for one config: the traced output's spans, checked per trace."""

    def __init__(self, config: Config):
        self.checker = TraceChecker(config.span_mapping())
        self.traced = traced_output(config)
        when = None if self.traced is None else config.output[self.traced].settings.when
        self._match = None if when is None else when.matcher()

    def add_selected(self, batch: Batch, selections: list[Batch] | None) -> None:
        """A run's batch: with a `when` rule on the traced output, what it selected."""
        t = self.traced
        if selections is not None and t is not None and t < len(selections):
            batch = selections[t]
        self.checker.add(batch.events)

    def add_calls(self, events: list[str]) -> None:
        """A preview's whole calls (a trace cut short would look broken), filtered by the
        traced output's `when` rule (logs routed elsewhere are no spans)."""
        match = self._match
        self.checker.add(events if match is None else [e for e in events if match(parse_event(e))])

    def finish(self) -> list[TraceReport]:
        return self.checker.finish()

    @property
    def reports(self) -> list[TraceReport]:
        return self.checker.reports

    @property
    def unreadable(self) -> int:
        return self.checker.unreadable

    def summary(self) -> str:
        return self.checker.summary()


def _window(doc: dict, m: SpanMapping) -> tuple[int, int]:
    start = parse_nanos(doc, m.start_time)
    if doc.get(m.end_time) is not None:
        return start, parse_nanos(doc, m.end_time)
    return start, start + duration_nanos(float(doc[m.duration_ms]), m.duration_ms)
