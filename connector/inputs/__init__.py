"""Inputs: schedules that emit timestamps. The registry maps config names to plugins.

base.py      what every input shares (tags, count, start/end) and the plugin protocol
cron.py      cron expressions (six fields: seconds first)
rate.py      a constant rate or a load shape (stages); sharded across replicas
schedule.py  the run's schedule as a value: each input's window resolved once, the
             merged stream, the worker's share, the target rates
merge()      (here) the inputs' streams in timestamp order
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime

from connector.inputs import cron, rate
from connector.inputs.base import InputConfig, InputPlugin
from connector.replay import recorded  # the recording's own times (connector/replay/)

__all__ = ["INPUTS", "InputConfig", "InputPlugin", "merge"]

INPUTS: dict[str, InputPlugin] = {"cron": cron, "rate": rate, "recorded": recorded}


def merge(streams: Iterable[Iterator[datetime]]) -> Iterator[tuple[datetime, int]]:
    """(timestamp, input index) in timestamp order; equal timestamps keep input order."""
    streams = list(streams)
    if len(streams) == 1:  # the common case: no heap, and zip builds the pairs in C
        return zip(streams[0], itertools.repeat(0))
    # keyed by the instant: two aware times in one DST zone compare by wall clock
    return heapq.merge(
        *(_indexed(s, i) for i, s in enumerate(streams)),
        key=lambda tick: (tick[0].timestamp(), tick[1]),
    )


def _indexed(stream: Iterator[datetime], index: int) -> Iterator[tuple[datetime, int]]:
    for ts in stream:
        yield ts, index
