"""`kafka`: publish events to Kafka topics with a delivery callback for every event."""

from connector.outputs.kafka.sink import (
    DEFAULTS,
    INVALID_TOPIC,
    UTF8,
    Config,
    KafkaOutput,
    Transactions,
    build,
    schema_check,
    schema_problems,
    transactional_id,
    warnings,
)

__all__ = [
    "DEFAULTS",
    "INVALID_TOPIC",
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
