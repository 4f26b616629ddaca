"""The manifest format on its own: written as chunks, read back as one run, and every
hostile manifest (random bytes, truncated, a newer format, a damaged chunk) refused by
`connector verify` with exit 2 and a message, never a traceback."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.identity import Identity
from connector.manifest import ManifestError, ManifestWriter, read_manifest
from connector.manifest import format as fmt
from connector.manifest.hashing import header_bytes, record_hash, sampled
from connector.manifest.recorders import CHUNK_RECORDS, _hashes
from tests.harness.cli import no_traceback, run_cli
from tests.harness.hypothesis_profiles import budget


class Report:
    """A delivery report as the kafka recorder reads it (unit test double)."""

    def __init__(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes):
        self._t, self._p, self._o, self._k, self._v = topic, partition, offset, key, value

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes | None:
        return self._k

    def value(self) -> bytes:
        return self._v


def write_kafka_manifest(path: Path, count: int, identity: Identity | None = None) -> Path:
    writer = ManifestWriter(path, identity or Identity())
    recorder = writer.kafka("k", {"bootstrap.servers": "x:1", "topic": "t"}, b"")
    for i in range(count):
        recorder.add(Report("t", i % 3, i // 3, b"k%d" % i, b"v%d" % i))
    writer.close()
    return writer.path


def test_kafka_records_round_trip_in_chunks(tmp_path):
    count = CHUNK_RECORDS * 2 + 5  # more than one chunk per partition
    path = write_kafka_manifest(tmp_path / "m.manifest", count)
    run = read_manifest(path)
    record = run.outputs["k"]
    assert sum(len(p.offsets) for p in record.kafka.values()) == count
    pairs = record.kafka[("t", 1)].sorted_pairs()
    assert pairs[0] == (0, record_hash(b"k1", b"v1"))
    assert [o for o, _ in pairs] == list(range(len(pairs)))
    assert run.unfinished == []


def test_size_per_million_kafka_records_is_within_the_budget(tmp_path):
    """10 million records in at most 200 MB: 20 bytes a record, hashes included."""
    path = write_kafka_manifest(tmp_path / "m.manifest", 300_000)
    per_record = path.stat().st_size / 300_000
    assert per_record <= 20, per_record


def test_traces_lines_and_counts_round_trip(tmp_path):
    writer = ManifestWriter(tmp_path / "m.manifest", Identity())
    traces = writer.traces("o", "otlp", {"signal": "traces"})
    traces.add([(b"\x01" * 16, b"\x02" * 8), (b"\x01" * 16, b"\x03" * 8)])
    lines = writer.lines("f", {"path": str(tmp_path / "out")})
    (tmp_path / "out").write_bytes(b"a\nbb\n")
    fd = os.open(tmp_path / "out", os.O_RDONLY)
    os.lseek(fd, 5, os.SEEK_SET)
    lines.add_written(fd, b"a\nbb\n")
    os.close(fd)
    counts = writer.counts("l", "otlp", {"signal": "logs"})
    counts.add(["svc", "svc", "other"])
    writer.close()
    run = read_manifest(tmp_path / "m.manifest")
    assert run.outputs["o"].traces == {b"\x01" * 16: {b"\x02" * 8, b"\x03" * 8}}
    assert run.outputs["f"].lines[str(tmp_path / "out")] == [
        (0, 2, record_hash(None, b"a")),
        (2, 3, record_hash(None, b"bb")),
    ]
    assert run.outputs["l"].counts == {"svc": 2, "other": 1}


def test_a_folder_of_parts_reads_as_one_run(tmp_path):
    for worker in range(2):
        write_kafka_manifest(tmp_path / "parts", 10, Identity(0, 1, worker, 2))
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [
        "replica-0-worker-0.manifest",
        "replica-0-worker-1.manifest",
    ]
    run = read_manifest(tmp_path / "parts")
    assert sum(len(p.offsets) for p in run.outputs["k"].kafka.values()) == 20


def test_the_hash_covers_key_value_and_headers():
    base = record_hash(b"k", b"v", header_bytes([("h", b"1")]))
    assert base != record_hash(b"k", b"v", header_bytes([("h", b"2")]))
    assert base != record_hash(b"K", b"v", header_bytes([("h", b"1")]))
    assert record_hash(None, b"v") != record_hash(b"", b"v")
    assert record_hash(b"kv", b"") != record_hash(b"k", b"v")
    assert header_bytes([("h", "1")]) == header_bytes([("h", b"1")])  # str as the producer sends


keys = st.one_of(st.none(), st.binary(max_size=12))


@budget(200)
@given(
    records=st.lists(st.tuples(keys, st.one_of(st.none(), st.binary(max_size=40))), min_size=1),
    headers=st.sampled_from([b"", header_bytes([("h", b"1")])]),
    alike=st.booleans(),
)
def test_hashes_in_bulk_are_each_records_hash(records, headers, alike):
    """The recorder's C loops give record_hash of every record, keyed, keyless, mixed or
    with tombstones, with and without headers."""
    if alike:  # the common batches: every key absent, or every key present, values all there
        records = [(records[0][0] if k is None else k, v or b"") for k, v in records]
    got = _hashes([k for k, _ in records], [v for _, v in records], headers)
    assert got == [record_hash(k, v, headers) for k, v in records]
    if all(k is None for k, _ in records):  # an output without keys: they are not read
        assert _hashes(None, [v for _, v in records], headers) == got


@budget(100)
@given(
    offsets=st.lists(st.integers(0, 2**40), min_size=1, max_size=300, unique=True),
    partitions=st.lists(st.integers(0, 3), min_size=300, max_size=300),
    topics=st.booleans(),
)
def test_reports_in_any_order_round_trip(tmp_path_factory, offsets, partitions, topics):
    """Offsets out of order, runs broken across partitions and topics (a templated topic):
    every report reads back at its offset with its hash."""
    folder = tmp_path_factory.mktemp("m")
    writer = ManifestWriter(folder / "m.manifest", Identity())
    fixed = None if topics else "t"
    recorder = writer.kafka("k", {"bootstrap.servers": "x:1", "topic": "t"}, b"", fixed)
    sent = {}
    for i, offset in enumerate(offsets):
        topic = f"t{i % 2}" if topics else "t"
        report = Report(topic, partitions[i], offset, None, b"v%d" % offset)
        recorder.add(report)
        sent[(topic, partitions[i], offset)] = record_hash(None, b"v%d" % offset)
    writer.close()
    read = {
        (topic, partition, offset): digest
        for (topic, partition), part in read_manifest(folder / "m.manifest").outputs["k"]
        .kafka.items()
        for offset, digest in part.sorted_pairs()
    }
    assert read == sent


def test_a_format_1_manifest_verifies_with_format_1s_hash(tmp_path):
    """Manifests written before XXH3 (format 1: CRC-32 and Adler-32) still verify."""
    from zlib import adler32, crc32

    from connector.verify.files import verify_files
    from connector.verify.report import Progress

    out = tmp_path / "out"
    out.write_bytes(b"a\nbb\n")
    old = [(0, 2, (crc32(b"\x00\x02a") << 32) | adler32(b"\x00\x02a")),
           (2, 3, (crc32(b"\x00\x02bb") << 32) | adler32(b"\x00\x02bb"))]
    name = str(out).encode()
    rows = b"".join(struct.pack("<QIQ", *row) for row in old)
    output = {"id": 0, "name": "f", "plugin": "file", "settings": {"path": str(out)}}
    data = (
        fmt.HEADER.pack(fmt.MAGIC, 1, 0)
        + fmt.chunk_bytes(fmt.META, fmt.json_payload({"sample": 1}))
        + fmt.chunk_bytes(fmt.OUTPUT, fmt.json_payload(output))
        + fmt.chunk_bytes(fmt.LINES, struct.pack(f"<HH{len(name)}sI", 0, len(name), name, 2) + rows)
        + fmt.chunk_bytes(fmt.END, fmt.json_payload({"recorded": {"0": 2}}))
    )
    (tmp_path / "m.manifest").write_bytes(data)
    record = read_manifest(tmp_path / "m.manifest").outputs["f"]
    assert record.version == 1
    tally = verify_files(record, Progress(quiet=True))
    assert (tally.expected, tally.found) == (2, 2)
    out.write_bytes(b"a\nbc\n")
    assert verify_files(record, Progress(quiet=True)).found == 1


def test_sampling_keeps_the_same_traces_everywhere():
    ids = [i.to_bytes(16, "big") for i in range(1, 2001)]
    kept = [t for t in ids if sampled(t, 10)]
    assert 100 < len(kept) < 300
    assert kept == [t for t in ids if sampled(t, 10)]


def test_a_crash_leaves_the_chunks_before_it_readable(tmp_path):
    path = write_kafka_manifest(tmp_path / "m.manifest", 1000)
    data = path.read_bytes()
    end = data.rindex(b"CK")  # the END chunk: as if the process died before it
    path.write_bytes(data[: end + 7])  # and a torn header of it
    with pytest.raises(ManifestError, match="--partial"):
        read_manifest(path)
    run = read_manifest(path, partial=True)
    assert sum(len(p.offsets) for p in run.outputs["k"].kafka.values()) == 1000
    assert run.unfinished == [str(path)]


def hostile(tmp_path: Path) -> dict[str, bytes]:
    good = write_kafka_manifest(tmp_path / "good.manifest", 100).read_bytes()
    header = fmt.HEADER.size
    damaged = bytearray(good)
    damaged[header + fmt.CHUNK.size + 2] ^= 0xFF  # inside the first chunk's body
    newer = struct.pack("<8sHH", fmt.MAGIC, fmt.VERSION + 1, 0) + good[header:]
    bad_payload = fmt.header_bytes() + fmt.chunk_bytes(fmt.OUTPUT, b"{not json")
    undeclared = fmt.header_bytes() + fmt.chunk_bytes(fmt.KAFKA, struct.pack("<H", 7) + b"x")
    return {
        "random bytes": os.urandom(4096),
        "empty": b"",
        "truncated header": good[:5],
        "truncated": good[: len(good) // 2],
        "newer format": newer,
        "damaged chunk": bytes(damaged),
        "bad payload": bad_payload + fmt.chunk_bytes(fmt.END, b"{}"),
        "undeclared output": undeclared + fmt.chunk_bytes(fmt.END, b"{}"),
        "not a chunk": good[:header] + b"XX" + good[header + 2 :],
    }


EXPECTED = {
    "random bytes": "not a connector manifest",
    "empty": "too short",
    "truncated header": "too short",
    "truncated": "incomplete",
    "newer format": "newer than this connector reads",
    "damaged chunk": "checksum mismatch",
    "bad payload": "cannot be read",
    "undeclared output": "never declared",
    "not a chunk": "not a chunk header",
}


def test_hostile_manifests_exit_2_with_a_message(tmp_path):
    for name, data in hostile(tmp_path).items():
        path = tmp_path / f"{name.replace(' ', '-')}.manifest"
        path.write_bytes(data)
        result = run_cli("verify", path, "--json")
        no_traceback(result.stderr)
        assert result.code == 2, (name, result.stderr)
        assert EXPECTED[name] in result.stderr, (name, result.stderr)
        assert str(path) in result.stderr
        assert result.stdout == ""


def test_missing_and_empty_manifest_folders_exit_2(tmp_path):
    result = run_cli("verify", tmp_path / "nope")
    assert result.code == 2 and "no such manifest" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run_cli("verify", tmp_path / "empty")
    assert result.code == 2 and "without any *.manifest part" in result.stderr


def test_an_unwritable_manifest_path_stops_the_run_with_exit_2(tmp_path, write):
    script = write("s.py", "def produce(p):\n    return '{}'\n")
    config = write(
        "c.yaml",
        "mode: backfill\nmetrics: {port: 0}\ninput: [{cron: {expression: '* * * * * *', "
        "start: '2026-01-01T00:00:00Z', end: '2026-01-01T00:00:03Z'}}]\n"
        f"event: {{script: {{path: {script}}}}}\noutput: [{{null: {{}}}}]\n",
    )
    blocker = write("file", "x")
    result = run_cli("run", config, "--manifest", blocker / "m.manifest")
    assert result.code == 2, result.stderr
    assert "--manifest" in result.stderr and "cannot write it" in result.stderr
    no_traceback(result.stderr)


def test_json_report_of_a_manifest_with_only_counts(tmp_path):
    writer = ManifestWriter(tmp_path / "m.manifest", Identity())
    writer.counts("logs", "otlp", {"signal": "logs"}).add(["a", "b"])
    writer.close()
    result = run_cli("verify", tmp_path / "m.manifest", "--json")
    assert result.code == 0, result.stderr
    (row,) = json.loads(result.stdout)["outputs"]
    assert row["expected"] == 2 and "not read back" in row["note"]


def test_no_secret_reaches_the_manifest(tmp_path):
    from connector.manifest.format import read_chunks
    from connector.outputs.base import Acks
    from connector.outputs.kafka import Config, KafkaOutput

    config = Config(bootstrap_servers="broker:9093", topic="t", producer={
        "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "svc",
        "sasl.password": "hunter2-secret", "ssl.key.password": "hunter3-secret"})
    output = KafkaOutput(config, Acks("k", "kafka"))
    writer = ManifestWriter(tmp_path / "m.manifest", Identity())
    output.record_to(writer, "k")
    writer.close()
    settings = read_manifest(tmp_path / "m.manifest").outputs["k"].settings
    assert settings["security.protocol"] == "SASL_SSL" and settings["sasl.username"] == "svc"
    assert not any("password" in name for name in settings)
    chunks, _, _ = read_chunks((tmp_path / "m.manifest").read_bytes(), "m")
    assert not any(b"secret" in chunk.payload for chunk in chunks)
