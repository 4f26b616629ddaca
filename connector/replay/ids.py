"""`new_ids: true`: every old trace or span id maps to a fresh one by a keyed hash, so the
same old id gets the same new id wherever it appears (parents, links, logs) without a
table that grows with the recording. The key is the run's seed and the loop: the same
--seed gives the same ids, and each loop gets its own."""

from __future__ import annotations

from hashlib import blake2b

__all__ = ["FreshIds"]


class FreshIds:
    def __init__(self, seed: bytes, loop: int):
        self._key = seed + loop.to_bytes(8, "big")

    def trace(self, old: str) -> str:
        return self._fresh(old, 16, b"t")

    def span(self, old: str) -> str:
        return self._fresh(old, 8, b"s")

    def _fresh(self, old: str, size: int, kind: bytes) -> str:
        if not old:  # no parent stays no parent
            return old
        new = blake2b(kind + old.lower().encode(), key=self._key[:64], digest_size=size).digest()
        if not any(new):  # all zeros is no valid id in OTLP
            new = b"\x01" + new[1:]
        return new.hex()
