"""How stdout and file outputs write events: the format, and the bytes of one line each.

Both outputs write one event per line, so an event must be one line and UTF-8:
- an event holding a line break (`\\n` or `\\r`) fails alone as `holds a line break`
  (written as it is, it would read back as two events);
- an event that is not UTF-8 encodable (a lone surrogate such as `"\\udcff"`) fails
  alone as `not UTF-8 encodable`.
The rest of the batch is written. The common case costs two joins, two scans and
one encode per batch; events are looked at one by one only when that finds a problem.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
from collections.abc import Callable
from typing import Literal

import orjson

from connector.fields import Strict
from connector.values import Unkept, compact

__all__ = [
    "FormatterConfig",
    "account",
    "cut_torn_line",
    "encode_lines",
    "format_batch",
    "torn",
    "write_all",
]

Fail = Callable[..., None]  # Acks.fail(reason, value, detail=None)
NOT_SENT = "not sent: stopping"  # the pipeline's reason for events a second signal cut off
UNKEPT = "a value JSON cannot keep exactly"  # 1e400, nesting past the reader's depth


class FormatterConfig(Strict):
    format: Literal["plain", "json"] = "plain"


def format_batch(events: list[str], fmt: str, fail: Fail) -> list[str]:
    """The lines to write. Under `json` each event is written as compact JSON holding its
    own values exactly (see connector/values.py); one that is not JSON, or holds what JSON
    cannot keep exactly (1e400, nesting past the reader's depth), goes to `fail`."""
    if fmt == "plain":
        return events
    lines = []
    for event in events:
        try:
            lines.append(compact(event))
        except Unkept as exc:
            fail(UNKEPT, event, detail=str(exc)[:200])
        except orjson.JSONDecodeError as exc:
            fail("not JSON", event, detail=str(exc)[:200])
    return lines


def encode_lines(lines: list[str], fail: Fail) -> tuple[bytes, list[str]]:
    """The batch as bytes, one line per event, and the events those lines hold. An event
    that cannot be one UTF-8 line goes to `fail` and is left out; the others are kept."""
    bare = "".join(lines)  # a line break in an event shows here (`in` is a fast scan)
    if "\n" not in bare and "\r" not in bare:
        try:
            return ("\n".join(lines) + "\n").encode(), lines
        except UnicodeEncodeError:
            pass
    kept, parts = [], []
    for line in lines:
        if "\n" in line or "\r" in line:
            fail("holds a line break", line, detail="the output writes one event per line")
            continue
        try:
            parts.append(line.encode())
        except UnicodeEncodeError as exc:
            fail("not UTF-8 encodable", line, detail=f"{exc.reason} at index {exc.start}")
            continue
        kept.append(line)
    parts.append(b"")
    return b"\n".join(parts) if kept else b"", kept


def write_all(fd: int, data: bytes, atomic: int = 0) -> tuple[int, BaseException | None]:
    """Write every byte, retrying short writes: (bytes written, the error that stopped it:
    an OSError, or a KeyboardInterrupt, a second signal, that the caller re-raises once it
    has accounted for the batch).
    With `atomic` (a pipe's PIPE_BUF), each write() holds whole lines and at most that many
    bytes when it can, so lines from several processes on one pipe never mix."""
    view, done, size = memoryview(data), 0, len(data)
    while done < size:
        end = size
        if atomic and size - done > atomic:
            cut = data.rfind(b"\n", done, done + atomic)
            end = cut + 1 if cut >= 0 else (data.find(b"\n", done + atomic) + 1 or size)
        try:
            n = os.write(fd, view[done:end])
        except BlockingIOError:  # a non-blocking pipe that is full: wait until it drains
            select.select([], [fd], [], 1.0)
            continue
        except BaseException as exc:  # an OSError, or a second signal
            return done, exc
        if n <= 0:  # no progress and no error: call it what it is
            return done, OSError(errno.EIO, "write() wrote nothing")
        done += n
    return done, None


def account(
    data: bytes,
    lines: list[str],
    written: int,
    error: BaseException | None,
    ok: Callable[[int], None],
    fail: Fail,
) -> None:
    """After write_all(data): the events whose whole line was written are delivered, each
    of the rest fails with the OS's reason (`write failed: No space left on device`), or
    as not sent when a second signal interrupted the write."""
    if error is None:
        ok(len(lines))
        return
    whole = data.count(b"\n", 0, written)  # no event holds a newline (encode_lines)
    if whole:
        ok(whole)
    os_error = isinstance(error, OSError)
    reason = f"write failed: {error.strerror or error}" if os_error else NOT_SENT
    for line in lines[whole:]:
        fail(reason, line)


def torn(data: bytes, written: int) -> int:
    """Bytes of a line only partly written: what follows the last whole line."""
    return written - (data.rfind(b"\n", 0, written) + 1)


def cut_torn_line(fd: int, torn: int) -> None:
    """Remove the start of a line whose write failed (its event was counted failed), but
    only while it is the file's last bytes: another process may have appended since."""
    if torn <= 0:
        return
    with contextlib.suppress(OSError):
        end = os.lseek(fd, 0, os.SEEK_CUR)
        if os.fstat(fd).st_size == end:
            os.ftruncate(fd, end - torn)
