"""The replay as the run's event step: each tick takes the next recorded record and
returns it re-timed to the tick (and with fresh ids), or hands it to the user's script
as `params['record']`. The run's ticks end with the recording (`follow`)."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable, Iterator
from datetime import datetime, tzinfo
from typing import Any

from connector.events.script import Script, ScriptStop
from connector.replay.config import ReplayConfig
from connector.replay.ids import FreshIds
from connector.replay.records import BadRecord, Record, RecordError, Source
from connector.replay.sources import open_source

__all__ = ["Replay", "ReplayScript", "played"]

log = logging.getLogger("connector.replay")
SHOWN = 10  # bad records logged one by one; the rest are counted


def played(source: Source, loops: int | None) -> Iterator[tuple[int, Record]]:
    """(loop, record) over every pass of the recording; a pass without records ends it
    (a loop for ever over an empty file would spin)."""
    for loop in itertools.count() if loops is None else range(loops):
        empty = True
        for record in source.records():
            empty = False
            yield loop, record
        if empty:
            return


class Replay:
    """Lock-step with the ticks: one record per produce() call."""

    def __init__(self, config: ReplayConfig, tz: tzinfo, seed: bytes):
        self.config, self.seed = config, seed
        self.source = open_source(config, tz)
        self.source_path = config.source_path
        self._ids: dict[int, FreshIds] = {}
        self._records: Iterator[tuple[int, Record]] | None = None
        self._ahead: tuple[int, Record] | None = None
        self.done = False

    def share(self, worker: int, workers: int) -> None:
        """Under --workers, worker k replays records k, k+N...: the ticks it gets."""
        records = played(self.source, self.config.loops)
        if workers > 1:
            records = itertools.islice(records, worker, None, workers)
        self._records = records
        self._advance()

    def _advance(self) -> None:
        self._ahead = next(self._records, None)  # type: ignore[arg-type]
        self.done = self._ahead is None

    def more(self, _tick: object = None) -> bool:
        if self._records is None:
            self.share(0, 1)
        return not self.done

    def next(self, new_time: datetime) -> list[str]:
        """The next record at `new_time`; [] once the recording is over."""
        if not self.more():
            return []
        loop, record = self._ahead  # type: ignore[misc]
        self._advance()
        if isinstance(record, BadRecord):
            raise RecordError(f"{record.where}: {record.reason}")
        ids = None
        if self.config.new_ids:
            ids = self._ids.get(loop)
            if ids is None:
                self._ids = {loop: FreshIds(self.seed, loop)}  # one loop at a time
                ids = self._ids[loop]
        try:
            return self.source.render(record, new_time, ids)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise RecordError(f"{record.where}: cannot replay ({exc!r:.200})") from None


class ReplayScript(Script):
    """A Script whose produce() replays; with the user's script, through it."""

    def __init__(self, replay: Replay, path: Any, on_error: str,
                 user: Callable[[dict], Any] | None = None):
        self.replay, self.user = replay, user
        super().__init__(self._produce if user else self._record, path, on_error)
        self.bad_records = 0

    def _record(self, params: dict) -> list[str]:
        return self.replay.next(params["timestamp"])

    def _produce(self, params: dict) -> Any:
        events = self.replay.next(params["timestamp"])
        if not events and self.replay.done:
            return []
        return self.user({**params, "record": events[0] if len(events) == 1 else events})

    def follow(self, stream: Iterator, worker: int = 0, workers: int = 1) -> Iterator:
        self.replay.share(worker, workers)
        return itertools.takewhile(self.replay.more, stream)

    def raised(self, exc: BaseException) -> None:
        if not isinstance(exc, RecordError):
            super().raised(exc)
            return
        self.errors["bad_record"] += 1
        self.bad_records += 1
        if self.on_error == "stop":
            raise ScriptStop(f"bad record: {exc}")
        if self.bad_records <= SHOWN:
            more = "; further ones are counted only" if self.bad_records == SHOWN else ""
            log.error("replay: bad record skipped: %s%s", exc, more)


def replay_seed() -> bytes:
    """Drawn from `random` after --seed seeded it: the same seed, the same fresh ids."""
    return random.getrandbits(256).to_bytes(32, "big")
