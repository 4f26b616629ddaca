"""The live canary of a kafka output: every `every` seconds it takes the next `sample`
acknowledged records, waits `delay`, and reads each back by its offset, in a thread of
its own with a consumer of its own, until `timeout` after its acknowledgement: found,
missing, or altered. The produce path only hands it delivery reports while it asks for
some (one attribute test a report).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from connector.canary.config import CanaryConfig
from connector.canary.loop import CanaryLoop
from connector.manifest.hashing import header_bytes, record_hash

__all__ = ["KafkaCanary"]


@dataclass(slots=True)
class _Sample:
    topic: str
    partition: int
    offset: int
    digest: int
    acked: float  # time.monotonic() of its acknowledgement


class KafkaCanary(CanaryLoop):
    def __init__(
        self,
        config: CanaryConfig,
        client: dict[str, Any],
        acks,
        headers: bytes,
        transactional: bool,
    ):
        super().__init__(config, acks, ("found", "missing", "altered"), "kafka-canary")
        self.headers = headers
        self.client = {
            **client,
            "group.id": "connector-canary",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed" if transactional else "read_uncommitted",
        }
        self.consumer: Consumer | None = None

    # -- the produce path (delivery reports) -------------------------------------------
    def take(self, msg) -> None:
        if self.want <= 0:
            return
        self.want -= 1
        digest = record_hash(msg.key(), msg.value(), self.headers)
        self._hand([_Sample(msg.topic(), msg.partition(), msg.offset(), digest, time.monotonic())])

    # -- its own thread ------------------------------------------------------------------
    def _begin(self) -> None:
        self.consumer = Consumer(self.client)

    def _end(self) -> None:
        if self.consumer is not None:
            self.consumer.close()

    def _round(self, waiting: list[_Sample], now: float) -> list[_Sample]:
        due = [s for s in waiting if now - s.acked >= self.config.delay]
        if not due:
            return waiting
        return [s for s in waiting if s not in due] + self._check(self.consumer, due)

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
            if result == "found":
                self._found(sample.acked)
            else:
                self.acks.canary[result] += 1
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
