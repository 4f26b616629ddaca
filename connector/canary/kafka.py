"""The live canary of a kafka output: every `every` seconds it takes the next `sample`
acknowledged records, waits `delay`, and reads each back by its offset, in a thread of
its own with a consumer of its own, until `timeout` after its acknowledgement.

The produce path only hands it delivery reports while it asks for some (one attribute
test a report). Results go to the output's Acks: `canary` (found, missing, altered) and
`canary_seconds` (acknowledgement -> readable), which the summary and /metrics read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from connector.canary.config import CanaryConfig
from connector.manifest.hashing import header_bytes, record_hash
from connector.stats import Histogram

__all__ = ["VISIBLE_BUCKETS", "KafkaCanary"]

log = logging.getLogger("connector.canary")
VISIBLE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass(slots=True)
class _Sample:
    topic: str
    partition: int
    offset: int
    digest: int
    acked: float  # time.monotonic() of its acknowledgement


class KafkaCanary:
    def __init__(
        self,
        config: CanaryConfig,
        client: dict[str, Any],
        acks,
        headers: bytes,
        transactional: bool,
    ):
        self.config, self.acks, self.headers = config, acks, headers
        self.client = {
            **client,
            "group.id": "connector-canary",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed" if transactional else "read_uncommitted",
        }
        acks.canary = Counter({"found": 0, "missing": 0, "altered": 0})
        acks.canary_seconds = Histogram(VISIBLE_BUCKETS)
        self.want = 0  # reports the produce path should hand over now
        self._taken: list[_Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kafka-canary", daemon=True)

    # -- the produce path (delivery reports) -------------------------------------------
    def take(self, msg) -> None:
        if self.want <= 0:
            return
        self.want -= 1
        sample = _Sample(
            msg.topic(),
            msg.partition(),
            msg.offset(),
            record_hash(msg.key(), msg.value(), self.headers),
            time.monotonic(),
        )
        with self._lock:
            self._taken.append(sample)

    # -- its own thread ------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        consumer = Consumer(self.client)
        waiting: list[_Sample] = []
        next_sample = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_sample:
                    self.want = self.config.sample
                    next_sample = now + self.config.every
                with self._lock:
                    waiting += self._taken
                    self._taken = []
                due = [s for s in waiting if now - s.acked >= self.config.delay]
                if due:
                    left = self._check(consumer, due)
                    waiting = [s for s in waiting if s not in due] + left
                self._stop.wait(0.2)
        except Exception:  # the canary never takes the run down
            log.exception("the canary of output %s stopped", self.acks.name)
        finally:
            consumer.close()

    def _check(self, consumer: Consumer, due: list[_Sample]) -> list[_Sample]:
        """Read each due sample; the ones not readable yet (and not past timeout) stay."""
        left = []
        for sample in due:
            result = self._read(consumer, sample)
            if result is None:
                if time.monotonic() - sample.acked >= self.config.timeout:
                    self.acks.canary["missing"] += 1
                else:
                    left.append(sample)
                continue
            self.acks.canary[result] += 1
            if result == "found":
                self.acks.canary_seconds.observe(time.monotonic() - sample.acked)
        return left

    def _read(self, consumer: Consumer, s: _Sample) -> str | None:
        """found / altered, or None: not readable now."""
        try:
            consumer.assign([TopicPartition(s.topic, s.partition, s.offset)])
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                if msg.offset() != s.offset:
                    return None  # it is not there (compacted, deleted)
                headers = header_bytes(msg.headers()) if self.headers else b""
                same = record_hash(msg.key(), msg.value(), headers) == s.digest
                return "found" if same else "altered"
            return None
        except KafkaException:
            return None
        finally:
            consumer.unassign()


def attach(canary: KafkaCanary, sink, transactions) -> None:
    """Hand the canary delivery reports while it asks for some (sink: a KafkaSink;
    transactions: its TransactionalSink or None)."""

    def wrap(callback):
        def on_delivery(err, msg) -> None:
            callback(err, msg)
            if err is None and canary.want > 0:
                canary.take(msg)

        return on_delivery

    if transactions is not None:
        transactions._on_delivery = wrap(transactions._on_delivery)
    sink._on_delivery = wrap(sink._on_delivery)
