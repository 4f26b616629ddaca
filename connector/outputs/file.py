"""`file`: one event per line into a file, appended or overwritten; flushed on shutdown."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from connector.fields import ConfigPath
from connector.outputs.base import Acks, OutputConfig, OutputError
from connector.outputs.formatter import FormatterConfig, format_batch

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

    def start(self) -> None:
        path = self.config.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered, one write() per batch: appends from several workers never interleave
            # inside a line (O_APPEND writes to a local file are atomic).
            self.file = open(path, "ab" if self.config.mode == "append" else "wb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"cannot open {path} for writing: {exc.strerror or exc}") from None

    def write_batch(self, events: list[str]) -> None:
        lines = format_batch(events, self.config.formatter.format, self.acks.fail)
        if not lines:
            return
        try:
            self.file.write(("\n".join(lines) + "\n").encode())
        except OSError as exc:
            for line in lines:
                self.acks.fail(f"write failed: {exc.strerror or exc}", line)
            return
        self.acks.ok(len(lines))

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


def build(config: Config, acks: Acks) -> FileOutput:
    return FileOutput(config, acks)
