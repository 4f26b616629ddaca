"""The 64-bit hash of a record that the manifest keeps and verify recomputes.

CRC-32 in the high word, Adler-32 in the low one, both over the key, the value and the
headers: two C passes over bytes already in hand (a keyed cryptographic hash costs about
four times as much per record, on the produce hot path's thread). It detects a record
that changed; it is not meant to resist someone forging one.
"""

from __future__ import annotations

from zlib import adler32, crc32

__all__ = ["KEYLESS", "header_bytes", "record_hash", "sampled"]


def header_bytes(headers: list | None) -> bytes:
    """Headers as the hash sees them: name, NUL, value (None: absent), a 0x1e after each."""
    if not headers:
        return b""
    parts = []
    for name, value in headers:
        if isinstance(value, str):
            value = value.encode()
        parts.append(name.encode() + b"\x00" + (b"\x01" if value is None else b"\x02" + value))
    return b"\x1e".join(parts) + b"\x1e"


_NO_KEY = b"\x00"  # the stream hashed: a key tag (and the key), a value tag (and the
_VALUE, _NO_VALUE = b"\x02", b"\x03"  # value), then the headers
_SEEDS = {v: (crc32(_NO_KEY + v), adler32(_NO_KEY + v)) for v in (_VALUE, _NO_VALUE)}
KEYLESS = _SEEDS[_VALUE]  # the seeds of a record with a value and no key


def record_hash(key: bytes | None, value: bytes | None, headers: bytes = b"") -> int:
    tag = _NO_VALUE if value is None else _VALUE
    if key is None:
        high, low = _SEEDS[tag]
    else:
        prefix = b"\x01" + key + tag
        high, low = crc32(prefix), adler32(prefix)
    if value is not None:
        high, low = crc32(value, high), adler32(value, low)
    if headers:
        high, low = crc32(headers, high), adler32(headers, low)
    return (high << 32) | low


def sampled(trace_id: bytes, every: int) -> bool:
    """One trace in `every`, by its id: every process keeps the same traces."""
    return every <= 1 or crc32(trace_id) % every == 0
