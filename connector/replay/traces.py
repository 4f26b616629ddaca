"""`group_traces: true` for JSON sources (jsonl, kafka): consecutive records of one
`trace_id` are one record, so that one tick replays a whole trace and each span keeps its
offset from the trace's first start (its duration is a field of its own, kept)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from connector.replay.records import BadRecord, Ids, Record, Source

__all__ = ["TraceGroups", "grouped"]


class TraceGroups:
    def __init__(self, inner: Source, field: str = "trace_id"):
        self.inner, self.field = inner, field
        self.name = inner.name

    def records(self) -> Iterator[Record]:
        field = self.field
        spans: list[Record] = []
        current = None
        for record in self.inner.records():
            if isinstance(record, BadRecord):
                yield record
                continue
            trace = record.data.get(field) if isinstance(record.data, dict) else None
            if spans and trace != current:
                yield _trace(spans)
                spans = []
            current = trace
            spans.append(record)
        if spans:
            yield _trace(spans)

    def check(self) -> list[str]:
        return self.inner.check()

    def render(self, record: Record, new_time: datetime, ids: Ids | None) -> list[str]:
        root, out = record.when, []
        for span in record.data:
            at = new_time if root is None or span.when is None else new_time + (span.when - root)
            out += self.inner.render(span, at, ids)
        return out


def _trace(spans: list[Record]) -> Record:
    times = [s.when for s in spans if s.when is not None]
    return Record(min(times) if times else None, spans, spans[0].where)


def grouped(source: Source) -> TraceGroups:
    return TraceGroups(source)
