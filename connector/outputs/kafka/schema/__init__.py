"""Schema'd Kafka records: Avro or JSON Schema in the Confluent wire format."""

from connector.outputs.kafka.schema.serializer import (
    Bad,
    Loaded,
    Mismatch,
    Registry,
    SchemaFile,
    Serializer,
    SubjectStrategy,
    check,
    connect,
    load,
    preload,
    problems,
    subject,
)

__all__ = [
    "Bad",
    "Loaded",
    "Mismatch",
    "Registry",
    "SchemaFile",
    "Serializer",
    "SubjectStrategy",
    "check",
    "connect",
    "load",
    "preload",
    "problems",
    "subject",
]
