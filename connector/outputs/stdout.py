"""`stdout`: one event per line. Only events go to stdout; logs go to stderr."""

from __future__ import annotations

import contextlib
import sys

from pydantic import Field

from connector.outputs.base import Acks, OutputConfig
from connector.outputs.formatter import FormatterConfig, format_batch

__all__ = ["Config", "StdoutOutput", "build"]


class Config(OutputConfig):
    formatter: FormatterConfig = Field(default_factory=FormatterConfig)


class StdoutOutput:
    def __init__(self, config: Config, acks: Acks, stream=None):
        self.config = config
        self.acks = acks
        self.stream = stream
        self.broken: str | None = None

    def start(self) -> None:
        self.stream = self.stream or sys.stdout

    def write_batch(self, events: list[str]) -> None:
        lines = format_batch(events, self.config.formatter.format, self.acks.fail)
        if not lines:
            return
        if self.broken is None:
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.acks.ok(len(lines))
                return
            except (BrokenPipeError, ValueError, OSError) as exc:  # reader went away
                self.broken = f"write failed: {exc}"
        for line in lines:
            self.acks.fail(self.broken, line)

    def poll(self) -> None:
        pass

    def ready(self) -> bool:
        return self.broken is None

    def flush(self, timeout: float) -> int:
        with contextlib.suppress(BrokenPipeError, ValueError, OSError):
            self.stream.flush()
        return 0

    def close(self) -> None:
        self.flush(0)


def build(config: Config, acks: Acks) -> StdoutOutput:
    return StdoutOutput(config, acks)
