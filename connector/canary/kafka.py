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
            # a sample is a few records: no prefetching of megabytes past them (librdkafka
            # fetches ahead by default, which costs the machine the run is using)
            "queued.min.messages": 100,
            "queued.max.messages.kbytes": 1024,
            "fetch.max.bytes": 1_048_576,
            "max.partition.fetch.bytes": 262_144,
        }
        self.consumer: Consumer | None = None

    # -- the produce path (delivery reports) -------------------------------------------
    def take(self, msg) -> None:
        with self._lock:  # taken `sample` times a round: the lock is not per report
            if self.want <= 0:
                return
            self.want -= 1
            if not self.want:
                self.switch(False)
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
        """Read each due sample; the ones not readable yet (and not past timeout) stay. Near
        samples of a partition are read in one pass (a round's are mostly consecutive);
        far ones apart, so a missing record never makes it read all the log between."""
        results: dict[tuple[str, int, int], str] = {}
        for (topic, partition), run in _near(due):
            found = self._read(consumer, topic, partition, run)
            results.update(((topic, partition, offset), r) for offset, r in found.items())
        left = []
        for sample in due:
            result = results.get((sample.topic, sample.partition, sample.offset))
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

    def _read(
        self, consumer: Consumer, topic: str, partition: int, samples: dict[int, _Sample]
    ) -> dict[int, str]:
        """offset -> found / altered, for the samples of one partition read now; an offset
        not there (compacted, deleted, not yet visible) is left out."""
        first, last = min(samples), max(samples)
        results: dict[int, str] = {}
        try:
            consumer.assign([TopicPartition(topic, partition, first)])
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                offset = msg.offset()
                if offset < first:  # the first is gone: the consumer reset to the start
                    break
                sample = samples.get(offset)
                if sample is not None:
                    headers = header_bytes(msg.headers()) if self.headers else b""
                    same = record_hash(msg.key(), msg.value(), headers) == sample.digest
                    results[offset] = "found" if same else "altered"
                if offset >= last:
                    break
        except KafkaException:
            pass
        finally:
            consumer.unassign()
        return results


_NEAR = 100  # offsets at most this far apart are read in one pass


def _near(samples: list[_Sample]) -> list[tuple[tuple[str, int], dict[int, _Sample]]]:
    """The samples as runs of one partition whose offsets are at most _NEAR apart."""
    runs: list[tuple[tuple[str, int], dict[int, _Sample]]] = []
    last = -1
    for sample in sorted(samples, key=lambda s: (s.topic, s.partition, s.offset)):
        where = (sample.topic, sample.partition)
        if not runs or runs[-1][0] != where or sample.offset - last > _NEAR:
            runs.append((where, {}))
        runs[-1][1][sample.offset] = sample
        last = sample.offset
    return runs


def attach(canary: KafkaCanary, sink, transactions) -> None:
    """Hand the canary delivery reports while it asks for some (sink: a KafkaSink;
    transactions: its TransactionalSink or None): its callback is swapped in then, and out
    once it has its sample, so a report costs nothing more the rest of the time. A batch
    reads the callback when it starts: the swap counts from the next one. The callback in
    place is read when the swap happens, not now: --manifest installs its own after this."""

    def wrap(callback):
        def on_delivery(err, msg) -> None:
            callback(err, msg)
            if err is None and canary.want > 0:
                canary.take(msg)

        return on_delivery

    owner = transactions if transactions is not None else sink
    swapped: list = []  # the callback the canary's wraps, while it is in place

    def switch(on: bool) -> None:  # under the canary's lock; attribute swaps are atomic
        if on and not swapped:
            swapped.append(owner._on_delivery)
            owner._on_delivery = wrap(swapped[0])
        elif not on and swapped:
            owner._on_delivery = swapped.pop()

    canary.switch = switch
