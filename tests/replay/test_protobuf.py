"""Protobuf records read back for a replay: the message-index array as the connector's
writer makes it, and a record that is not the message fails alone as a ValueError (the
source turns it into a bad record). The whole path against the real registry and broker
is in test_kafka_encodings.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from connector.outputs.kafka.schema.protobuf import index_bytes
from connector.replay.protobuf import ProtoRecords, message_indexes

TEXT = """
syntax = "proto3";
package t;
message A { int32 n = 1; message Inner { string s = 1; } }
message B { string name = 1; }
"""


@pytest.mark.parametrize("indexes", [[0], [1], [0, 0], [3, 1, 2], [200]])
def test_message_indexes_read_what_the_writer_writes(indexes):
    assert message_indexes(index_bytes(indexes) + b"rest") == (indexes, b"rest")


@pytest.mark.parametrize("body", [b"", b"\x80", b"\x04\x80", b"\xfe\xff\xff\xff\x0f"])
def test_truncated_or_absurd_indexes_are_a_value_error(body):
    with pytest.raises(ValueError):
        message_indexes(body)


class Registry:  # the two calls ProtoRecords makes, answered from memory
    def get_schema(self, schema_id):
        return SimpleNamespace(schema_str=TEXT, references=[])


def test_each_message_by_its_indexes_and_garbage_fails_alone():
    records = ProtoRecords(Registry())
    assert records.decode(1, index_bytes([0]) + b"\x08\x05") == {"n": 5}
    assert records.decode(1, index_bytes([1]) + b"\x0a\x02hi") == {"name": "hi"}
    assert records.decode(1, index_bytes([0, 0]) + b"\x0a\x01x") == {"s": "x"}
    for bad in (index_bytes([0]) + b"\x08", index_bytes([0]) + b"\xff\xff", index_bytes([7])):
        with pytest.raises(ValueError):
            records.decode(1, bad)
