"""`stdout`: one event per line. Only events go to stdout; logs go to stderr.

Each batch is written straight to the file descriptor, every write checked, so an event
counts as delivered only once its line is in the pipe or file. A reader that went away
(`Broken pipe`) fails the events not written and every later one; an event that cannot
be one UTF-8 line fails alone (see formatter.py).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import select
import stat
import sys

from pydantic import Field

from connector.outputs.base import Acks, Batch, BuildContext, OutputConfig
from connector.outputs.formatter import (
    FormatterConfig,
    account,
    encode_lines,
    format_batch,
    write_all,
)

__all__ = ["Config", "StdoutOutput", "build"]


class Config(OutputConfig):
    formatter: FormatterConfig = Field(default_factory=FormatterConfig)


class StdoutOutput:
    def __init__(self, config: Config, acks: Acks, stream=None, lock_path: str | None = None):
        self.config = config
        self.acks = acks
        self.stream = stream
        self.lock_path = lock_path  # --workers: a lock file they take turns on for each batch
        self.fd: int | None = None
        self.atomic = 0  # write() size that a pipe keeps whole (see formatter.write_all)
        self.broken: str | None = None
        self.lock: int | None = None  # fd of the workers' shared lock file

    def start(self) -> None:
        self.stream = self.stream or sys.stdout
        if self.stream is None:  # started with stdout closed (`>&-`): Python has none
            self.broken = "write failed: stdout is closed"
            return
        with contextlib.suppress(AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self.stream.flush()  # anything printed before goes first
            self.fd = self.stream.fileno()
            mode = os.fstat(self.fd).st_mode
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):  # --workers share the pipe
                self.atomic = select.PIPE_BUF
                if self.lock_path:
                    self.lock = os.open(self.lock_path, os.O_RDONLY)

    def write_batch(self, batch: Batch) -> None:
        fail = self.acks.fail
        lines = format_batch(batch.events, self.config.formatter.format, fail)
        if not lines:
            return
        if self.broken is not None:
            for line in lines:
                fail(self.broken, line)
            return
        data, lines = encode_lines(lines, fail)
        if not lines:
            return
        if self.fd is None:  # a stream without a file descriptor (a test's StringIO)
            self._write_stream(data, lines)
            return
        if self.lock is not None:
            fcntl.flock(self.lock, fcntl.LOCK_EX)  # once a batch: lines never interleave
        try:
            written, error = write_all(self.fd, data, self.atomic)
        finally:
            if self.lock is not None:
                fcntl.flock(self.lock, fcntl.LOCK_UN)
        if isinstance(error, OSError) and error.errno in (errno.EPIPE, errno.EBADF):
            # a closed pipe does not reopen: what follows fails at once
            self.broken = f"write failed: {error.strerror or error}"
        account(data, lines, written, error, self.acks.ok, fail)
        if error is not None and not isinstance(error, OSError):
            raise error  # a second signal: every event of the batch is accounted for

    def _write_stream(self, data: bytes, lines: list[str]) -> None:
        try:
            self.stream.write(data.decode())
        except (OSError, ValueError) as exc:
            self.broken = f"write failed: {getattr(exc, 'strerror', None) or exc}"
            for line in lines:
                self.acks.fail(self.broken, line)
            return
        self.acks.ok(len(lines))

    def poll(self) -> None:
        pass

    def ready(self) -> bool:
        return self.broken is None

    def flush(self, timeout: float) -> int:
        if self.fd is None and self.stream is not None and self.broken is None:
            with contextlib.suppress(OSError, ValueError):
                self.stream.flush()
        return 0  # every batch is written when it is handed over

    def close(self) -> None:
        self.flush(0)
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None


def build(config: Config, acks: Acks, context: BuildContext | None = None) -> StdoutOutput:
    return StdoutOutput(config, acks, lock_path=None if context is None else context.stdout_lock)
