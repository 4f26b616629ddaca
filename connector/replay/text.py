"""Line sources: JSONL (a time field, id fields) and plain log lines (a timestamp found by
a regex, read and written with a strptime format, the seed's replay case)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, tzinfo
from pathlib import Path

from connector.replay.config import JsonlSource, LinesSource
from connector.replay.files import lines
from connector.replay.records import BadRecord, Ids, Record
from connector.replay.times import read_time, write_time
from connector.values import dumps, loads

__all__ = ["JsonlReader", "LinesReader", "readable", "render_doc", "renew_ids", "retime_doc"]


def renew_ids(doc: dict, fields: tuple[str, ...], ids: Ids) -> None:
    """Id fields renewed in place: 32 hex characters are a trace id, others a span id."""
    for name in fields:
        old = doc.get(name)
        if old.__class__ is str and old:
            doc[name] = ids.trace(old) if len(old) == 32 else ids.span(old)


def retime_doc(doc: dict, field: str | None, new_time: datetime) -> None:
    if field is not None and field in doc:
        doc[field] = write_time(doc[field], new_time)


def render_doc(doc: dict, time_field: str | None, id_fields: tuple[str, ...],
               new_time: datetime, ids: Ids | None) -> list[str]:
    """A JSON record at its new time, with its ids renewed, as one event."""
    retime_doc(doc, time_field, new_time)
    if ids is not None:
        renew_ids(doc, id_fields, ids)
    return [dumps(doc)]


def readable(path: Path, key: str) -> list[str]:
    """The recording can be opened (a config error now, not a failed run later)."""
    try:
        with open(path, "rb"):
            return []
    except OSError as exc:
        return [f"{key}: cannot read {path}: {exc.strerror or exc}"]


class JsonlReader:
    def __init__(self, config: JsonlSource, tz: tzinfo):
        self.config, self.tz = config, tz
        self.name = config.path.name

    def records(self) -> Iterator[Record]:
        field, tz, name = self.config.time_field, self.tz, self.name
        for n, line, error in lines(self.config.path):
            if line is None:
                yield BadRecord(None, f"{name}:{n}", error or "unreadable")
                continue
            try:
                doc = loads(line.decode())  # numbers exactly as recorded
            except ValueError as exc:  # UnicodeDecodeError and orjson's error included
                yield BadRecord(None, f"{name}:{n}", f"not JSON ({exc})")
                continue
            if doc.__class__ is not dict:
                yield BadRecord(None, f"{name}:{n}", f"not a JSON object ({type(doc).__name__})")
                continue
            when = None
            if field is not None:
                when = read_time(doc.get(field), tz)
                if when is None:
                    yield BadRecord(None, f"{name}:{n}", f"field '{field}' is missing or no time")
                    continue
            yield Record(when, doc, f"{name}:{n}")

    def check(self) -> list[str]:
        return readable(self.config.path, "event.replay.jsonl.path")

    def render(self, record: Record, new_time: datetime, ids: Ids | None) -> list[str]:
        return render_doc(record.data, self.config.time_field, self.config.id_fields,
                          new_time, ids)


class LinesReader:
    def __init__(self, config: LinesSource, tz: tzinfo):
        self.config, self.tz = config, tz
        self.name = config.path.name
        self.pattern = re.compile(config.pattern)
        self.group = "ts" if "ts" in self.pattern.groupindex else 1

    def records(self) -> Iterator[Record]:
        search, group, fmt, tz, name = (
            self.pattern.search, self.group, self.config.format, self.tz, self.name
        )
        last: datetime | None = None
        for n, raw, error in lines(self.config.path):
            where = f"{name}:{n}"
            if raw is None:
                yield BadRecord(last, where, error or "unreadable")
                continue
            try:
                line = raw.decode()
            except UnicodeDecodeError as exc:
                yield BadRecord(last, where, f"not UTF-8 at byte {exc.start}")
                continue
            found = search(line)
            if found is None:  # a continuation line (a stack trace): played as it is
                yield Record(last, (line, None), where)
                continue
            try:
                when = datetime.strptime(found.group(group), fmt)
            except ValueError:
                yield BadRecord(last, where, f"timestamp {found.group(group)!r} does not "
                                             f"match format {fmt!r}")
                continue
            last = when if when.tzinfo else when.replace(tzinfo=tz)
            yield Record(last, (line, found.span(group)), where)

    def check(self) -> list[str]:
        return readable(self.config.path, "event.replay.lines.path")

    def render(self, record: Record, new_time: datetime, ids: Ids | None) -> list[str]:
        line, span = record.data
        if span is None:
            return [line]
        return [line[: span[0]] + new_time.strftime(self.config.format) + line[span[1] :]]
