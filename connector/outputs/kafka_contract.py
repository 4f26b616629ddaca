"""Transitional: the Kafka output (outputs/kafka.py) on the new contract until the Kafka
package adopts it itself. Everything here goes when it does."""

from __future__ import annotations

import time

from connector.outputs.base import Acks, Batch, BuildContext
from connector.outputs.kafka import (
    Config,
    KafkaOutput,
    schema_check,
    schema_problems,
    warnings,
)

__all__ = ["Config", "KafkaContract", "build", "schema_check", "schema_problems", "warnings"]


class _Committed:
    """The output's committed positions as a PositionStore (they are saved with the
    transactions, through Batch.position)."""

    def __init__(self, output: KafkaOutput):
        self.output = output

    def load(self) -> dict | None:
        return self.output.committed_position()

    def save(self, position: dict) -> None:
        self.output.mark(position)


class KafkaContract:
    def __init__(self, output: KafkaOutput, positions: bool):
        self.inner = output
        self.config, self.acks = output.config, output.acks
        self.wants_times = output.wants_times
        self.wants_calls = output.wants_calls
        self.transactional = output.transactional
        output.positions = positions and output.transactional

    def start(self) -> None:
        self.inner.start()

    def ready(self) -> bool:
        return self.inner.ready()

    def write_batch(self, batch: Batch) -> None:
        inner = self.inner
        if batch.events:
            if inner.wants_calls:
                inner.write_batch(batch.events, batch.times, calls=batch.call_starts)
            else:
                inner.write_batch(batch.events, batch.times)
        if batch.position is not None:
            inner.mark(batch.position)

    def poll(self) -> None:
        self.inner.poll()

    def flush(self, timeout: float) -> int:
        return self.inner.flush(timeout)

    def close(self) -> None:
        self.inner.close()

    def stop_within(self, seconds: float) -> None:
        self.acks.stop_deadline = time.monotonic() + seconds

    def positions(self) -> _Committed | None:
        return _Committed(self.inner) if self.inner.positions else None


def build(config: Config, acks: Acks, context: BuildContext | None = None) -> KafkaContract:
    positions = context is not None and context.positions
    return KafkaContract(KafkaOutput(config, acks), positions)
