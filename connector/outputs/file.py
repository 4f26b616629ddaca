"""`file`: one event per line into a file, appended or overwritten.

Every write is checked: a short write is retried for the rest, and when a write cannot
complete (`No space left on device`, `File too large`) the events it did not write fail
with that reason, so the file's lines and the delivered count always agree. A line torn
by such a failure is cut off again. An event that cannot be one UTF-8 line fails alone
(see formatter.py).
"""

from __future__ import annotations

import os
import select
import stat
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from connector.fields import ConfigPath
from connector.outputs.base import Acks, Batch, BuildContext, OutputConfig, OutputError
from connector.outputs.formatter import (
    FormatterConfig,
    account,
    cut_torn_line,
    encode_lines,
    format_batch,
    torn,
    write_all,
)

if TYPE_CHECKING:
    from connector.manifest import ManifestWriter
    from connector.manifest.recorders import LineRecorder

__all__ = ["Config", "FileOutput", "build"]


class Config(OutputConfig):
    path: ConfigPath
    mode: Literal["append", "overwrite"] = "append"
    formatter: FormatterConfig = Field(default_factory=FormatterConfig)


class FileOutput:
    def __init__(self, config: Config, acks: Acks):
        self.config = config
        self.acks = acks
        self.file = None
        self.fd = -1
        self.atomic = 0  # write() size that a pipe keeps whole (see formatter.write_all)
        self.recorder: LineRecorder | None = None  # --manifest

    def start(self) -> None:
        path = self.config.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered, one write() per batch: appends from several workers never interleave
            # inside a line (O_APPEND writes to a local file are atomic).
            self.file = open(path, "ab" if self.config.mode == "append" else "wb", buffering=0)  # noqa: SIM115
            self.fd = self.file.fileno()
            if stat.S_ISFIFO(os.fstat(self.fd).st_mode):  # a pipe cannot cut a torn line
                self.atomic = select.PIPE_BUF
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            reason = getattr(exc, "strerror", None) or exc
            raise OutputError(f"cannot open {path} for writing: {reason}") from None

    def write_batch(self, batch: Batch) -> None:
        fail = self.acks.fail
        lines = format_batch(batch.events, self.config.formatter.format, fail)
        if not lines:
            return
        data, lines = encode_lines(lines, fail)
        if not lines:
            return
        written, error = write_all(self.fd, data, self.atomic)
        if error is not None:  # first the file, so it holds whole lines whatever follows
            cut_torn_line(self.fd, torn(data, written))
        if self.recorder is not None and written:
            self.recorder.add_written(self.fd, data[:written])
        account(data, lines, written, error, self.acks.ok, fail)
        if error is not None and not isinstance(error, OSError):
            raise error  # a second signal: every event of the batch is accounted for

    def record_to(self, writer: ManifestWriter, name: str) -> None:
        """--manifest: the path, and each line's byte range and hash."""
        self.recorder = writer.lines(name, {"path": str(self.config.path)})

    def poll(self) -> None:
        pass

    def ready(self) -> bool:
        return self.file is not None

    def flush(self, timeout: float) -> int:
        return 0  # every batch is written when it is handed over

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def build(config: Config, acks: Acks, context: BuildContext | None = None) -> FileOutput:
    return FileOutput(config, acks)
