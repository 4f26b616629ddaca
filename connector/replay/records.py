"""What every source yields: records in recorded order, each with its recorded time, and
what a bad one says. A source also renders a record at its new time with its ids."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

__all__ = ["BadRecord", "Record", "RecordError", "Source"]


class Record:
    """One recorded unit that one tick replays: a line, a log record, a metric point, or
    all the spans of one trace. `when` is its recorded time (None: it has none)."""

    __slots__ = ("data", "when", "where")

    def __init__(self, when: datetime | None, data: Any, where: str):
        self.when, self.data, self.where = when, data, where


class BadRecord(Record):
    """A record that cannot be replayed: its tick fails alone, with this reason."""

    __slots__ = ("reason",)

    def __init__(self, when: datetime | None, where: str, reason: str):
        super().__init__(when, None, where)
        self.reason = reason


class RecordError(Exception):
    """Raised into the run for a bad record: counted as a script error, the run goes on.
    Its message names where the record was (file:line, topic/partition@offset)."""


class Ids(Protocol):
    def trace(self, old: str) -> str: ...
    def span(self, old: str) -> str: ...


class Source(Protocol):
    """A recording: `records()` reads it again from its start (one pass per loop), in
    constant memory; `check()` says what makes it unplayable (config errors: a missing
topic, a range past the end); `render` turns one record into event strings at `new_time`, with
    its ids passed through `ids` (None: kept). `name` is shown in messages."""

    name: str

    def check(self) -> list[str]: ...

    def records(self) -> Iterator[Record]: ...

    def render(self, record: Record, new_time: datetime, ids: Ids | None) -> list[str]: ...
