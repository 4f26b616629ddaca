"""Kafka read-back: every recorded offset is read again and its hash compared.

Per topic partition, the range from the first to the last recorded offset is read in
order (read_committed for a transactional output) and merged with the recorded offsets:
- the record is there, same hash: found; another hash: altered;
- an offset inside the range that was never recorded: extra (counted, not failed);
- a recorded offset that is not read: below the log start offset (retention or
  deleteRecords), past the log's end, visible only read_uncommitted (aborted), or gone
  from the middle of the log (compacted, on a compacted topic).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from connector.manifest.hashing import hasher, header_bytes
from connector.manifest.reader import KafkaPart, OutputRecord
from connector.verify.report import Progress, Tally

__all__ = ["VerifyError", "verify_kafka"]

BELOW_START = "below the log start offset (retention or deleteRecords)"
PAST_END = "past the end of the log (the topic was recreated or truncated)"
COMPACTED = "compacted (a later record has its key)"
GONE = "not in the log (compacted or removed)"
NOT_COMMITTED = "not visible read_committed (aborted transaction)"


class VerifyError(Exception):
    """A backend cannot be reached or read: exit 2, the message names it."""


def verify_kafka(record: OutputRecord, client: dict[str, Any], progress: Progress) -> Tally:
    topics = sorted({topic for topic, _ in record.kafka})
    tally = Tally(record.name, "kafka", "records", ", ".join(topics))
    servers = client.get("bootstrap.servers", "?")
    base = {
        **client,
        "group.id": "connector-verify",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": 52_428_800,
        "queued.max.messages.kbytes": 262_144,
    }
    committed = "read_committed" if record.transactional else "read_uncommitted"
    consumer = Consumer({**base, "isolation.level": committed})
    try:
        try:
            consumer.list_topics(timeout=10)
        except KafkaException as exc:
            raise VerifyError(
                f"cannot reach Kafka at {servers} for output {record.name}: {exc.args[0].str()}"
            ) from None
        compacted = _compacted_topics(client, topics)
        total = sum(len(part.offsets) for part in record.kafka.values())
        headers_hashed = bool(record.settings.get("headers_hashed", True))
        seen = 0
        for topic in topics:
            parts = {p: part for (t, p), part in record.kafka.items() if t == topic}
            checks = _read_topic(
                consumer, topic, parts, tally, headers_hashed, hasher(record.version)
            )
            for partition, check in sorted(checks.items()):
                gaps = check.gaps
                low, high = _watermarks(consumer, topic, partition)
                if gaps and record.transactional:
                    raw = Consumer({**base, "isolation.level": "read_uncommitted"})
                    try:
                        gaps = _aborted(raw, topic, partition, gaps, tally)
                    finally:
                        raw.close()
                for offset, _ in gaps:
                    if offset < low:
                        reason = BELOW_START
                    elif offset >= high:
                        reason = PAST_END
                    else:
                        reason = COMPACTED if topic in compacted else GONE
                    tally.add("missing", reason, topic=topic, partition=partition, offset=offset)
            seen += sum(len(part.offsets) for part in parts.values())
            progress.update(f"kafka {record.name}", seen, total)
    finally:
        consumer.close()
    return tally


def _watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    except KafkaException as exc:
        raise VerifyError(f"Kafka: {topic}[{partition}]: {exc.args[0].str()}") from None


class _Check:
    """One partition's merge of what is read with what was recorded."""

    __slots__ = ("expected", "first", "gaps", "i", "last", "n")

    def __init__(self, part: KafkaPart):
        self.expected = part.sorted_pairs()
        self.first, self.last = self.expected[0][0], self.expected[-1][0]
        self.i, self.n = 0, len(self.expected)
        self.gaps: list[tuple[int, int]] = []

    def finish(self) -> None:
        self.gaps.extend(self.expected[self.i :])
        self.i = self.n


def _read_topic(
    consumer: Consumer,
    topic: str,
    parts: dict[int, KafkaPart],
    tally: Tally,
    headers_hashed: bool,
    record_hash: Callable[[bytes | None, bytes | None, bytes], int],
) -> dict[int, _Check]:
    """Read every recorded partition of a topic at once, from its first recorded offset
    to its last (or the partition's end), merging as records come: found, altered, extra;
    what was not read is left in each check's gaps for its reason."""
    checks = {p: _Check(part) for p, part in parts.items()}
    tally.expected += sum(c.n for c in checks.values())
    consumer.assign([TopicPartition(topic, p, c.first) for p, c in checks.items()])
    left, idle = set(checks), 0
    found = altered = extra = 0
    try:
        while left:
            batch = consumer.consume(num_messages=10_000, timeout=1.0)
            if not batch:
                idle += 1
                if idle >= 30:  # nothing for 30 s and no end of partition: give up
                    raise VerifyError(f"Kafka: {topic}: no answer for 30 s")
                continue
            idle = 0
            for msg in batch:
                err = msg.error()
                partition = msg.partition()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if partition in left:
                            left.discard(partition)
                            checks[partition].finish()
                        continue
                    raise VerifyError(f"Kafka: {topic}[{partition}]: {err.str()}")
                if partition not in left:
                    continue
                check, offset = checks[partition], msg.offset()
                if offset < check.first:  # reset to the log's start, below the range
                    continue
                expected, i, n = check.expected, check.i, check.n
                while i < n and expected[i][0] < offset:
                    check.gaps.append(expected[i])
                    i += 1
                if i < n and expected[i][0] == offset:
                    headers = header_bytes(msg.headers()) if headers_hashed else b""
                    if record_hash(msg.key(), msg.value(), headers) == expected[i][1]:
                        found += 1
                    else:
                        altered += 1
                        tally.add(
                            "altered",
                            "the record's hash differs",
                            n=0,
                            topic=topic,
                            partition=partition,
                            offset=offset,
                        )
                    i += 1
                elif offset <= check.last:
                    extra += 1
                check.i = i
                if offset >= check.last:
                    left.discard(partition)
                    check.finish()
    finally:
        consumer.unassign()
    tally.found += found
    tally.extra += extra
    if altered:
        tally.add("altered", "the record's hash differs", n=altered)
    return checks


def _messages(consumer: Consumer, topic: str, partition: int, first: int, last: int):
    """One partition's records from `first` through `last` (or its end), in order."""
    consumer.assign([TopicPartition(topic, partition, first)])
    idle = 0
    try:
        while True:
            batch = consumer.consume(num_messages=10_000, timeout=1.0)
            if not batch:
                idle += 1
                if idle >= 30:
                    raise VerifyError(f"Kafka: {topic}[{partition}]: no answer for 30 s")
                continue
            idle = 0
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return
                    raise VerifyError(f"Kafka: {topic}[{partition}]: {err.str()}")
                if msg.offset() > last:
                    return
                if msg.offset() >= first:
                    yield msg
                if msg.offset() == last:
                    return
    finally:
        consumer.unassign()


def _aborted(
    consumer: Consumer,
    topic: str,
    partition: int,
    gaps: list[tuple[int, int]],
    tally: Tally,
) -> list[tuple[int, int]]:
    """Read the gaps' range read_uncommitted: what shows there was aborted."""
    wanted = dict(gaps)
    seen: set[int] = set()
    for msg in _messages(consumer, topic, partition, gaps[0][0], gaps[-1][0]):
        offset = msg.offset()
        if offset in wanted:
            seen.add(offset)
            tally.add(
                "aborted",
                "the transaction was aborted",
                topic=topic,
                partition=partition,
                offset=offset,
            )
    return [(o, h) for o, h in gaps if o not in seen]


def _compacted_topics(client: dict[str, Any], topics: list[str]) -> set[str]:
    """The topics whose cleanup.policy compacts (a gap there is a compacted record)."""
    admin = AdminClient(client)
    found = set()
    try:
        futures = admin.describe_configs([ConfigResource("topic", t) for t in topics])
        for resource, future in futures.items():
            entries = future.result(timeout=10)
            policy = entries.get("cleanup.policy")
            if policy is not None and "compact" in (policy.value or ""):
                found.add(resource.name)
    except KafkaException:
        pass  # a topic that is gone: its offsets are reported missing anyway
    return found
