"""The recording a config names, as a Source (records(), render())."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, tzinfo

from connector.replay.config import OtlpSource, ReplayConfig
from connector.replay.files import lines
from connector.replay.otlp_json import OtlpRecords, render_otlp
from connector.replay.records import BadRecord, Ids, Record, Source
from connector.replay.text import JsonlReader, LinesReader, readable
from connector.replay.traces import grouped

__all__ = ["OtlpFileReader", "open_source"]


class OtlpFileReader:
    def __init__(self, config: OtlpSource, tz: tzinfo):
        self.config, self.tz = config, tz
        self.name = config.path.name
        self.parser = OtlpRecords(config.signal)

    def records(self) -> Iterator[Record]:
        parse, name = self.parser.parse, self.name
        for n, line, error in lines(self.config.path):
            if line is None:
                yield BadRecord(None, f"{name}:{n}", error or "unreadable")
            elif line.strip():
                yield from parse(line, f"{name}:{n}")

    def check(self) -> list[str]:
        return readable(self.config.path, "event.replay.otlp.path")

    def render(self, record: Record, new_time: datetime, ids: Ids | None) -> list[str]:
        return render_otlp(self.config.signal, record, new_time, ids, self.tz)


def open_source(config: ReplayConfig, tz: tzinfo) -> Source:
    """The source of `config`; nothing is read until records() is iterated."""
    if config.jsonl is not None:
        source: Source = JsonlReader(config.jsonl, tz)
    elif config.lines is not None:
        source = LinesReader(config.lines, tz)
    elif config.otlp is not None:
        return OtlpFileReader(config.otlp, tz)
    else:
        from connector.replay.kafka import KafkaReader  # confluent-kafka only when used

        source = KafkaReader(config.kafka, tz)
    if config.group_traces:
        return grouped(source)
    return source
