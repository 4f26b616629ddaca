"""The marker-topic position store: where a transactional producer's position lives, so a
run resumed with `--checkpoint` starts after exactly what was committed.

The positions live in a compacted topic, one record a transaction keyed by the
transactional id: written with the events in one transaction, read back with
read_committed by any client. (Offsets sent to a group would need a group and a
partition per id, and hide the position in offset metadata.)
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException

from connector.outputs.base import OutputError
from connector.outputs.kafka.client_log import strip
from connector.outputs.kafka.config import QUIET, Config, client_properties

__all__ = ["MarkerTopicStore"]


class MarkerTopicStore:
    """`load()` reads the last committed position of the transactional id; `save()` puts a
    position into the current transaction: the transaction writes the latest one it was
    given just before it commits (`pending`, then `written()`)."""

    def __init__(self, config: Config, transactional_id: str | None):
        self.config, self.transactional_id = config, transactional_id
        self.topic = config.transactions.marker_topic
        self.pending: bytes | None = None  # the latest position, not yet committed
        self.ready = False  # the topic is known to exist

    def load(self) -> dict | None:
        """The last position committed for this transactional id (read_committed), or None.
        Call it after the producer's init_transactions: that aborts an old open
        transaction."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        topic, key = self.topic, self.transactional_id.encode()
        timeout = self.config.connect_timeout
        consumer = Consumer(
            {
                **client_properties(self.config),
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "enable.auto.commit": False,
                "group.id": f"connector-unused-{key.decode()}",  # assign() only: never joined
            },
            logger=QUIET,
        )
        found = None
        try:
            meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                return None
            left = set(meta.partitions)
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in left])
            deadline = time.monotonic() + timeout
            while left:  # every partition up to its last committed record
                if time.monotonic() >= deadline:
                    raise OutputError(
                        f"cannot read the committed position of {self.transactional_id!r} "
                        f"from topic {topic} within {timeout:g}s (connect_timeout)"
                    )
                for msg in consumer.consume(1000, timeout=0.5):
                    if (err := msg.error()) is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            raise OutputError(f"cannot read topic {topic}: {strip(err.str())}")
                        left.discard(msg.partition())
                    elif msg.key() == key:
                        found = msg.value()
        except KafkaException as exc:
            raise OutputError(f"cannot read topic {topic}: {strip(exc.args[0].str())}") from None
        finally:
            consumer.close()
        return None if found is None else orjson.loads(found)["position"]

    def save(self, position: dict) -> None:
        """The position goes into the current transaction (its latest one is written just
        before the transaction commits)."""
        if not self.ready:
            self.create_topic()
        self.pending = orjson.dumps({"id": self.transactional_id, "position": position})

    def produce(self, producer: Any, record: bytes, on_delivery: Any) -> None:
        """Write a position record into the producer's open transaction (waiting for room);
        a refusal raises KafkaException."""
        while True:
            try:
                producer.produce(self.topic, record, self.transactional_id, on_delivery=on_delivery)
                return
            except BufferError:
                producer.poll(0.05)

    def written(self, record: bytes | None) -> None:
        """The transaction that held `record` committed: it is pending no more (unless a
        later position came meanwhile)."""
        if self.pending is record:
            self.pending = None

    def create_topic(self) -> None:
        """The compacted topic, if it does not exist yet."""
        from confluent_kafka.admin import AdminClient, NewTopic

        topic = self.topic
        admin = AdminClient(client_properties(self.config), logger=QUIET)
        try:
            if topic not in admin.list_topics(timeout=self.config.connect_timeout).topics:
                settings = {"cleanup.policy": "compact", "segment.ms": "600000"}
                new = NewTopic(topic, num_partitions=1, replication_factor=-1, config=settings)
                try:
                    admin.create_topics([new], request_timeout=15)[topic].result(timeout=20)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise
        except KafkaException as exc:
            raise OutputError(
                f"cannot create the marker topic {topic} (transactions.marker_topic): "
                f"{strip(exc.args[0].str())}"
            ) from None
        self.ready = True
