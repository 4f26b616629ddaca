"""`kafka`: publish events to Kafka topics with a delivery callback for every event.

config.py        the config model, librdkafka's defaults, the transactional id
output.py        KafkaOutput: start, ready, write_batch, flush, close (what the pipeline calls)
sink.py          the produce hot path: routing, produce, delivery reports, backpressure
transactions.py  the sink wrapped in Kafka transactions of whole produce() calls
segments.py      a transaction's segments: whole calls, and dropping a failed call whole
requests.py      commit and abort asked again while they fail retriably; the tx failures
positions.py     the marker-topic position store (load / save) for --checkpoint
client_log.py    librdkafka's log lines, and the rule that turns them into warnings
errors.py        Kafka's failures: bounded reasons, classified as connector.delivery says
checks.py        validate / preview: the topic's time limits, the registry's compatibility
schema/          schema'd records: Avro and JSON Schema with a Schema Registry

librdkafka does the batching, retries and (with idempotence) de-duplication; this output
maps events to messages and accounts for each acknowledgement. With `transactions`, events
are produced in Kafka transactions of whole produce() calls and count as delivered when
their transaction commits.
"""

from connector.outputs.base import Acks, BuildContext
from connector.outputs.kafka.checks import schema_check, schema_problems, warnings
from connector.outputs.kafka.config import DEFAULTS, Config, Transactions, transactional_id
from connector.outputs.kafka.errors import (
    CALL_FAILED,
    FENCED,
    INVALID_TOPIC,
    NOT_COMMITTED,
    UTF8,
)
from connector.outputs.kafka.output import KafkaOutput

__all__ = [
    "CALL_FAILED",
    "DEFAULTS",
    "FENCED",
    "INVALID_TOPIC",
    "NOT_COMMITTED",
    "UTF8",
    "Config",
    "KafkaOutput",
    "Transactions",
    "build",
    "schema_check",
    "schema_problems",
    "transactional_id",
    "warnings",
]


def build(config: Config, acks: Acks, context: BuildContext | None = None) -> KafkaOutput:
    return KafkaOutput(config, acks, context)
