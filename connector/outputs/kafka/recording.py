"""The kafka output's part of the run manifest (--manifest): each delivery report the
broker acknowledged goes to a KafkaRecorder, which hashes the record later, in bulk.

The delivery callback is wrapped once here, so a run without a manifest runs the very
same callback as before. A transactional output records what the broker acknowledged
inside a transaction; `connector verify` reads those read_committed and calls the
records of a transaction that was aborted afterwards `aborted`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from connector.manifest.hashing import header_bytes
from connector.outputs.kafka.config import SECRET_PROPERTY, client_properties

if TYPE_CHECKING:
    from connector.canary.kafka import KafkaCanary
    from connector.manifest import ManifestWriter
    from connector.manifest.recorders import TraceRecorder
    from connector.outputs.kafka.config import Config
    from connector.outputs.kafka.sink import KafkaSink
    from connector.outputs.kafka.transactions import TransactionalSink

__all__ = ["record_to"]


def record_to(
    config: Config,
    sink: KafkaSink,
    transactions: TransactionalSink | None,
    writer: ManifestWriter,
    name: str,
) -> None:
    templated = any(template for template, _ in sink.headers.values())
    # headers made from event fields differ per record and the report does not carry
    # them: those records are hashed without their headers (the manifest says so)
    headers = None if templated else header_bytes(list(config.headers.items()))
    settings = {
        **{k: v for k, v in client_properties(config).items() if not _secret(k)},
        "topic": config.topic,
        "encoding": config.encoding,
        "signal": config.signal,
        "transactional_id": None if transactions is None else transactions.transactional_id,
    }
    topic = None if sink.topic else config.topic  # a template: each report names its own
    keyed = config.key is not None or config.encoding != "raw"  # otlp: trace id, service
    recorder = writer.kafka(name, settings, headers, topic, keyed)
    sink.recorder = recorder
    if config.encoding != "raw" and config.signal == "traces":
        sink.trace_recorder = _spans(writer.traces(name, "kafka", settings), config.mapping.span_id)
    if transactions is not None:
        transactions._on_delivery = recorder.callback(transactions._on_delivery)
    sink.record(recorder)


def canary(config: Config, sink: KafkaSink, transactions: TransactionalSink | None) -> KafkaCanary:
    """The live canary of an output with a `verify:` block, fed its delivery reports."""
    from connector.canary.kafka import KafkaCanary, attach  # only canary users pay for it

    templated = any(template for template, _ in sink.headers.values())
    headers = b"" if templated else header_bytes(list(config.headers.items()))
    client = client_properties(config)
    made = KafkaCanary(config.verify, client, sink.acks, headers, transactions is not None)
    attach(made, sink, transactions)
    return made


def _secret(name: str) -> bool:
    return bool(SECRET_PROPERTY.search(name))


def _spans(recorder: TraceRecorder, field: str):
    """(message key, the events in it) -> the trace's span ids in the manifest: an otlp
    trace encoding keys each message by its trace id (hex) and the events are its spans."""

    def record(key: bytes, events: list[str]) -> None:
        try:
            trace = bytes.fromhex(key.decode())
        except (AttributeError, ValueError):
            return
        spans = []
        for event in events:
            try:
                spans.append((trace, bytes.fromhex(orjson.loads(event)[field])))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # the encoder took it, so this does not happen
        recorder.add(spans)

    return record
