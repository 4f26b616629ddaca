"""A recorded file read as a stream of lines: plain or gzip (told by its magic bytes),
one bounded line at a time, so a 1 GB file costs a buffer, not its size."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

__all__ = ["MAX_LINE", "lines"]

MAX_LINE = 16 << 20  # a longer line is a bad record, not a reason to hold it all
_GZIP = b"\x1f\x8b"


def lines(path: Path) -> Iterator[tuple[int, bytes | None, str | None]]:
    """(line number, the line without its end, None), or (n, None, reason) for a line
    that cannot be read; a broken gzip ends the stream with one such reason."""
    with open(path, "rb") as raw:
        packed = raw.read(2) == _GZIP
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw, mode="rb") if packed else raw
        n = 0
        try:
            while True:
                line = f.readline(MAX_LINE + 1)
                if not line:
                    return
                n += 1
                if len(line) > MAX_LINE and not line.endswith(b"\n"):
                    yield n, None, f"line longer than {MAX_LINE >> 20} MiB"
                    while (rest := f.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                        pass
                    continue
                yield n, line.rstrip(b"\r\n"), None
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            yield n + 1, None, f"gzip data broken after line {n}: {exc}"
