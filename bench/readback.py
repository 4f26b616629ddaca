"""What a bench run left, read back: the connector's (or a Collector's) /metrics, a
topic's records and the run's summary. One home for bench/ (which never imports tests/;
the suite's tests/harness/ reads the same things for the tests)."""

from __future__ import annotations

import re
import time
import urllib.request

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never proxy 127.0.0.1

Samples = dict[tuple[str, tuple], float]


def scrape(port: int) -> Samples | None:
    """{(sample name, sorted labels): value} from /metrics on the port; None when it does
    not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def metric(samples: Samples | None, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry these labels (0 when there are none)."""
    return sum(
        v for (n, ls), v in (samples or {}).items()
        if n == name and all(dict(ls).get(k) == want for k, want in labels.items())
    )


def buckets(samples: Samples, name: str) -> dict[float, float]:
    """A histogram's cumulative buckets {le: count}."""
    return {float(dict(ls)["le"]): v for (n, ls), v in samples.items() if n == f"{name}_bucket"}


def read_topic(bootstrap: str, topic: str, timeout: float = 600) -> list[bytes]:
    """Every record value the topic holds now, each partition read to its end. Partitions
    are assigned, not subscribed: no consumer group is made."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "enable.auto.offset.store": False,
                         "enable.partition.eof": True})
    try:
        parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        values, left = [], set(parts)
        deadline = time.monotonic() + timeout
        while left:
            if time.monotonic() > deadline:
                raise RuntimeError(f"reading {topic}: partitions {sorted(left)} never ended")
            for msg in consumer.consume(10_000, timeout=0.5):
                if msg.error() is None:
                    values.append(msg.value())
                elif msg.error().code() == KafkaError._PARTITION_EOF:
                    left.discard(msg.partition())
                else:
                    raise RuntimeError(str(msg.error()))
        return values
    finally:
        consumer.close()


def summary(stderr: str) -> dict:
    """The run summary: seconds, produced, and per output (delivered, failed)."""
    text = stderr[stderr.rfind("summary: "):]
    seconds = re.search(r"after ([\d.]+)s", text)
    produced = re.search(r"events produced: (\d+)", text)
    return {
        "seconds": float(seconds[1]) if seconds else None,
        "produced": int(produced[1]) if produced else None,
        "outputs": {name: (int(d), int(f)) for name, d, f in
                    re.findall(r"output (\S+): delivered (\d+), failed (\d+)", text)},
    }
