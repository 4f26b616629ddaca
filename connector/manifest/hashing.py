"""The 64-bit hash of a record that the manifest keeps and verify recomputes.

Format 2 (this connector writes it): XXH3-64 over the value, seeded by the key's own XXH3
(a constant without a key), then over the headers. One C call a record, a tenth of format
1's CRC-32 and Adler-32 pair on short records: the kafka output hashes every record it was
acknowledged, on the produce path's thread. Format 1's hash is kept to verify manifests
it wrote. Either detects a record that changed; neither is meant to resist forgery.
"""

from __future__ import annotations

from collections.abc import Callable
from zlib import adler32, crc32

from xxhash import xxh3_64_intdigest as xxh3

__all__ = ["KEYED", "KEYLESS", "hasher", "header_bytes", "record_hash", "sampled", "xxh3"]

KEYLESS = 0x636F_6E6E_6563_746F  # the value's seed when there is no key
KEYED = 0x6B65_7965_6420_6B21  # the key's seed; the key's hash seeds the value's
_MASK = (1 << 64) - 1


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


def record_hash(key: bytes | None, value: bytes | None, headers: bytes = b"") -> int:
    seed = KEYLESS if key is None else xxh3(key, KEYED)
    # a record without a value (a tombstone): the empty value under the next seed
    digest = xxh3(b"", (seed + 1) & _MASK) if value is None else xxh3(value, seed)
    return xxh3(headers, digest) if headers else digest


_NO_KEY = b"\x00"  # format 1's stream: a key tag (and the key), a value tag (and the
_VALUE, _NO_VALUE = b"\x02", b"\x03"  # value), then the headers


def _record_hash_v1(key: bytes | None, value: bytes | None, headers: bytes = b"") -> int:
    tag = _NO_VALUE if value is None else _VALUE
    prefix = _NO_KEY + tag if key is None else b"\x01" + key + tag
    high, low = crc32(prefix), adler32(prefix)
    if value is not None:
        high, low = crc32(value, high), adler32(value, low)
    if headers:
        high, low = crc32(headers, high), adler32(headers, low)
    return (high << 32) | low


def hasher(version: int) -> Callable[[bytes | None, bytes | None, bytes], int]:
    """record_hash as the manifest format `version` defines it."""
    return _record_hash_v1 if version == 1 else record_hash


def sampled(trace_id: bytes, every: int) -> bool:
    """One trace in `every`, by its id: every process keeps the same traces."""
    return every <= 1 or crc32(trace_id) % every == 0
