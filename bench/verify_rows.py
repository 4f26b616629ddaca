"""The manifest's and verify's rows: what `--manifest` costs the kafka row, how fast
`connector verify` reads Kafka back beside a bare confluent-kafka consumer on the same
topic, and the manifest's size per million records.

    python bench/verify_rows.py                      # 200,000 events, 3 rounds
    python bench/verify_rows.py --size 1000000 --rounds 5

Uses the local Kafka (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:19092) and the basic
example; runs alternate (without, with --manifest), each in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import costs  # noqa: E402  bench/costs.py: its run (rate, CPU an event) and config


def config(folder: Path, ticks: int, bootstrap: str, topic: str) -> Path:
    output = {"kafka": {"bootstrap_servers": bootstrap, "topic": topic}}
    return costs.config(folder, "basic/produce.py", ticks, output)


def run(path: Path, *args: str) -> tuple[float, float]:
    """(acknowledged events per second, CPU microseconds an event): costs.run, --quiet."""
    return costs.run(path, "--quiet", *args)


def bare_consumer(bootstrap: str, topic: str) -> tuple[int, float]:
    """(records, seconds): every partition read from the start to its end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-bare",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.max.bytes": 52_428_800,
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    began = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    left, n = set(parts), 0
    while left:
        for msg in consumer.consume(10_000, timeout=1.0):
            err = msg.error()
            if err is None:
                msg.value()  # what any reader does with a record
                n += 1
            elif err.code() == KafkaError._PARTITION_EOF:
                left.discard(msg.partition())
    seconds = time.perf_counter() - began
    consumer.close()
    return n, seconds


def verify_rate(manifest: Path) -> tuple[int, float]:
    from connector.manifest import read_manifest
    from connector.verify.kafka import verify_kafka
    from connector.verify.report import Progress

    (record,) = read_manifest(manifest).outputs.values()
    client = {"bootstrap.servers": record.settings["bootstrap.servers"]}
    began = time.perf_counter()
    tally = verify_kafka(record, client, Progress(quiet=True))
    seconds = time.perf_counter() - began
    assert tally.found == tally.expected, tally
    return tally.found, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=200_000, help="events a run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:19092"
    folder = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    plain, recorded, sizes = [], [], []
    cpu_plain, cpu_recorded = [], []
    topics = []
    for r in range(args.rounds):
        topic = f"bench-verify-{uuid.uuid4().hex[:8]}"
        topics.append(topic)
        path = config(folder, args.size, bootstrap, topic)
        rate, cpu = run(path)
        plain.append(rate)
        cpu_plain.append(cpu)
        manifest = folder / f"{topic}-{r}.manifest"
        topic2 = f"{topic}-m"
        topics.append(topic2)
        rate, cpu = run(config(folder, args.size, bootstrap, topic2), "--manifest", str(manifest))
        recorded.append(rate)
        cpu_recorded.append(cpu)
        sizes.append(manifest.stat().st_size / args.size * 1_000_000)
    bare_n, bare_s = bare_consumer(bootstrap, topics[-1])
    ver_n, ver_s = verify_rate(manifest)
    p, m = statistics.median(plain), statistics.median(recorded)
    print(f"events a run: {args.size:,}, rounds: {args.size and args.rounds}")
    print(f"kafka row:             {p:,.0f} events/s median ({min(plain):,.0f}-{max(plain):,.0f})")
    print(
        f"kafka row --manifest:  {m:,.0f} events/s median ({min(recorded):,.0f}-"
        f"{max(recorded):,.0f}): {100 * (p - m) / p:+.1f}% cost"
    )
    cp, cm = statistics.median(cpu_plain), statistics.median(cpu_recorded)
    print(
        f"CPU an event:          {cp:.2f} us without, {cm:.2f} us with --manifest "
        f"(medians): {100 * (cm - cp) / cp:+.1f}%"
    )
    print(f"manifest size:         {statistics.median(sizes) / 1e6:.1f} MB per million records")
    print(f"bare consumer:         {bare_n / bare_s:,.0f} records/s ({bare_n:,} records)")
    print(
        f"verify read-back:      {ver_n / ver_s:,.0f} records/s "
        f"({ver_n / ver_s / (bare_n / bare_s):.2f} of the bare consumer)"
    )
    from confluent_kafka.admin import AdminClient

    AdminClient({"bootstrap.servers": bootstrap}).delete_topics(topics)


if __name__ == "__main__":
    main()
