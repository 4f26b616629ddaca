"""OpenTelemetry (OTLP) for every output: traces, logs and metrics.

mapping.py  which event field holds each OTLP field, per signal; the shared field checks
wire.py     the protobuf wire format, written by hand (shared by all signals)
traces.py   span JSON -> Span messages; logs.py: log JSON -> LogRecords;
metrics.py  metric JSON -> data points, grouped per resource and metric name
compiled.py per-mapping fast paths for common spans and log records (same bytes, same errors),
            and the native encoders (`_native`, built from native/ when cargo is there)
            of spans, log records and metrics, each over its pure-Python twin
signals.py  each signal's encoder, request builder and endpoint (what the outputs use)
codec.py    the Kafka encodings otlp_proto / otlp_json
sender.py   batches, the queue and the thread around one export function; its retries and
            throttling are connector/delivery.py's, shared by every output

Nothing is imported here: a Kafka job with the raw encoding never loads protobuf.
"""
