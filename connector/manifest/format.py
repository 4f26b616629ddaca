"""The manifest's bytes: a header, then self-checking chunks, each compressed on its own.

    header   b"CMANIFST"  u16 version  u16 0                            (12 bytes)
    chunk    b"CK"  u8 kind  u32 payload length  u32 crc32(payload)  payload (zlib; KAFKA
             and TRACES stored, not compressed: random bytes do not compress)

A chunk is written whole with one write; a crash leaves at most one torn chunk at the
end, and everything before it reads. Kinds (payloads little-endian, before compression):

    META    JSON: the run (connector version, replica, worker, sample, started)
    OUTPUT  JSON: an output section {id, name, plugin, settings without secrets}
    KAFKA   u16 output, u16 len + topic, i32 partition, u32 ranges,
            ranges x (i64 first offset, u32 count), then one u64 hash per offset
    TRACES  u16 output, u32 traces, traces x (16-byte id, u16 spans, spans x 8-byte id)
    LINES   u16 output, u16 len + path, u32 lines, lines x (u64 offset, u32 length, u64 hash)
    COUNTS  u16 output, JSON {"signal", "resources": {name: count}} (not read back)
    END     JSON: {"outputs": {name: records recorded}}: the run finished its manifest
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "CHUNK",
    "COUNTS",
    "END",
    "HEADER",
    "KAFKA",
    "LINES",
    "MAGIC",
    "META",
    "OUTPUT",
    "TRACES",
    "VERSION",
    "Chunk",
    "ManifestError",
    "chunk_bytes",
    "header_bytes",
    "read_chunks",
]

MAGIC = b"CMANIFST"
VERSION = 2  # 2: records hashed with XXH3 (hashing.py); 1 is still read
HEADER = struct.Struct("<8sHH")
CHUNK = struct.Struct("<2sBII")
META, OUTPUT, KAFKA, TRACES, LINES, COUNTS, END = 1, 2, 3, 4, 5, 6, 9
KINDS = {META, OUTPUT, KAFKA, TRACES, LINES, COUNTS, END}
MAX_CHUNK = 64 << 20  # no writer makes a chunk this large: a bigger length is damage


class ManifestError(Exception):
    """The manifest cannot be read: the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Chunk:
    kind: int
    payload: bytes  # decompressed
    at: int  # its byte offset in the file, for messages


def header_bytes() -> bytes:
    return HEADER.pack(MAGIC, VERSION, 0)


def chunk_bytes(kind: int, payload: bytes) -> bytes:
    # hashes and trace ids are random bytes: compressing them costs time and saves nothing
    body = zlib.compress(payload, 0 if kind in (KAFKA, TRACES) else 1)
    return CHUNK.pack(b"CK", kind, len(body), zlib.crc32(body)) + body


def json_payload(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def read_chunks(data: bytes, name: str) -> tuple[list[Chunk], bool, int]:
    """(the chunks, whether the manifest ends torn: cut inside its last chunk, its format
    version).
    ManifestError for anything that is not a crash's torn tail."""
    if len(data) < HEADER.size:
        raise ManifestError(f"{name}: too short to be a manifest ({len(data)} bytes)")
    magic, version, _ = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ManifestError(f"{name}: not a connector manifest (no {MAGIC.decode()} header)")
    if version > VERSION:
        raise ManifestError(
            f"{name}: manifest format version {version} is newer than this connector reads "
            f"(version {VERSION}); verify it with a newer connector"
        )
    if version < 1:
        raise ManifestError(f"{name}: manifest format version {version} is not valid")
    return list(_chunks(data, name)), _torn(data), version


def _walk(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(offset, kind, length, crc) of each whole chunk header whose body is all there."""
    at = HEADER.size
    while at + CHUNK.size <= len(data):
        tag, kind, length, crc = CHUNK.unpack_from(data, at)
        if tag != b"CK" or kind not in KINDS or length > MAX_CHUNK:
            yield at, -1, length, crc
            return
        if at + CHUNK.size + length > len(data):
            return
        yield at, kind, length, crc
        at += CHUNK.size + length


def _torn(data: bytes) -> bool:
    end = HEADER.size
    for at, kind, length, _ in _walk(data):
        if kind < 0:
            return False
        end = at + CHUNK.size + length
    return end != len(data)


def _chunks(data: bytes, name: str) -> Iterator[Chunk]:
    for at, kind, length, crc in _walk(data):
        if kind < 0:
            raise ManifestError(f"{name}: damaged at byte {at} (not a chunk header)")
        body = data[at + CHUNK.size : at + CHUNK.size + length]
        if zlib.crc32(body) != crc:
            raise ManifestError(f"{name}: damaged at byte {at} (checksum mismatch)")
        try:
            payload = zlib.decompress(body)
        except zlib.error as exc:
            raise ManifestError(f"{name}: damaged at byte {at} ({exc})") from None
        yield Chunk(kind, payload, at)
