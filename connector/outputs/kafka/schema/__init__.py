"""Schema'd Kafka records: Avro, JSON Schema or Protobuf, with a Schema Registry.

files.py         schema files: the config keys, reading and parsing, subjects
registry.py      the Schema Registry: its config, registering at start, `validate`'s check
serializer.py    one subject's writer: an event -> the Confluent wire format, or Mismatch
avro.py          the strict Avro encoder, built once per schema
converters.py    JSON -> Avro's logical types (times, dates, bytes, decimals)
json_schema.py   JSON Schema's validator, and a failure named by the schema's own names
proto_compile.py .proto files compiled at start (grpcio-tools' protoc), the message written
proto_references.py  a .proto's imports registered as schema references
protobuf.py      the strict Protobuf encoder, built once per message

Imported by the kafka output only; fastavro, jsonschema, protobuf and the registry client
are imported when a schema needs them.
"""

from connector.outputs.kafka.schema.converters import Bad
from connector.outputs.kafka.schema.files import (
    Loaded,
    SchemaFile,
    SubjectStrategy,
    check,
    load,
    subject,
)
from connector.outputs.kafka.schema.registry import Registry, connect, preload, problems
from connector.outputs.kafka.schema.serializer import Mismatch, Serializer

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
