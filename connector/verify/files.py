"""File read-back: each recorded line is read again at its offset and its hash compared."""

from __future__ import annotations

from connector.manifest.hashing import hasher
from connector.manifest.reader import OutputRecord
from connector.verify.report import Progress, Tally

__all__ = ["verify_files"]


def verify_files(record: OutputRecord, progress: Progress) -> Tally:
    tally = Tally(record.name, "file", "lines", ", ".join(sorted(record.lines)))
    record_hash = hasher(record.version)
    for path, rows in sorted(record.lines.items()):
        tally.expected += len(rows)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            tally.add("missing", f"cannot open {path}: {exc.strerror or exc}", n=len(rows))
            continue
        with handle:
            for n, (offset, length, digest) in enumerate(rows, 1):
                handle.seek(offset)
                data = handle.read(length)
                if len(data) < length:
                    tally.add(
                        "missing", "the file is shorter (truncated)", path=path, offset=offset
                    )
                elif data[-1:] != b"\n" or record_hash(None, data[:-1]) != digest:
                    tally.add("altered", "the line's hash differs", path=path, offset=offset)
                else:
                    tally.found += 1
                if n % 65_536 == 0:
                    progress.update(f"file {path}", n, len(rows))
    return tally
