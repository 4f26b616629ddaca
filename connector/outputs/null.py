"""`null`: acknowledges every event and sends nothing; measures the script and the connector."""

from __future__ import annotations

from connector.outputs.base import Acks, Batch, BuildContext, OutputConfig

__all__ = ["Config", "NullOutput", "build"]


class Config(OutputConfig):
    pass


class NullOutput:
    def __init__(self, config: Config, acks: Acks):
        self.config = config
        self.acks = acks

    def start(self) -> None:
        pass

    def write_batch(self, batch: Batch) -> None:
        self.acks.ok(len(batch.events))

    def poll(self) -> None:
        pass

    def ready(self) -> bool:
        return True

    def flush(self, timeout: float) -> int:
        return 0

    def close(self) -> None:
        pass


def build(config: Config, acks: Acks, context: BuildContext | None = None) -> NullOutput:
    return NullOutput(config, acks)
