"""`bench/run.py --profile`: where an OTLP encoder's time goes, in µs per event, per signal.

For each signal (the example and mapping of its `otlp` row: basic as logs, multi-service as
metrics, tracing as traces) the events are made beforehand, then each stage runs alone over
all of them, `--rounds` times, and the fastest round counts (the machine is shared; the
fastest is the least disturbed):

  script   the example's produce() (S, for scale: E/S is the encoder against the script)
  parse    the JSON decode of each event (connector.values.loads, as the outputs do)
  map      reading the mapped fields and decoding them: hex ids, ISO times, numbers (a loop
           of the same calls the encoder makes, without writing anything)
  write    encode() minus map: writing the item's protobuf bytes
  text     parse + encode as the otlp output does it, from the event's text
           (codec.from_text where the codec has it: one parse shared with the encoder's checks)
  checked  the same with the checked encoders alone (values.loads, then traces.encode_span or
           logs.encode_log: the code before the compiled encoders), in rounds alternating
           with `text`, so `checked / text` is a ratio measured side by side
  request  grouping items by resource and framing the Export...ServiceRequest (8,192 a request)
  export   the gRPC call with the request already built (framing, the socket, the receiver's
           answer); `gzip` the same with gRPC's gzip compression on the channel

E is text + request + export, the bare loop's cost per event.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

BATCH = 8192  # items a request, as the otlp output's batch


def _events(
    script: Path, calls: int, start: datetime, rounds: int
) -> tuple[list[str], float]:
    """The example's events for `calls` timestamps, and the µs per event produce() took
    (the fastest of `rounds`, as every stage)."""
    spec = importlib.util.spec_from_file_location("bench_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stamps = [start + timedelta(seconds=k) for k in range(calls)]
    best = float("inf")
    for _ in range(rounds):
        events: list[str] = []
        began = time.perf_counter()
        for ts in stamps:
            r = module.produce({"timestamp": ts, "tags": ()})
            events += [r] if isinstance(r, str) else r
        best = min(best, time.perf_counter() - began)
    return events, best * 1e6 / len(events)


def _best(rounds: int, run: Callable[[], Any], n: int) -> float:
    """µs per event of the fastest of `rounds` runs."""
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best * 1e6 / n


def _alternating(rounds: int, runs: dict[str, Callable[[], Any]], n: int) -> dict[str, float]:
    """µs per event of the fastest run of each, the runs alternating round by round."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            began = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - began)
    return {name: seconds * 1e6 / n for name, seconds in best.items()}


def _checked(signal: str, model: Any) -> Callable[[Any, Any], Any] | None:
    """The checked encoder of a signal (traces and logs; metrics have only the one)."""
    if signal == "traces":
        from connector.otlp.traces import encode_span

        return encode_span
    if signal == "logs":
        from connector.otlp.logs import encode_log

        return encode_log
    return None


def _reader(signal: str, mapping: Any) -> Callable[[Any], Any]:
    """The `map` stage: what the encoder reads and decodes of one event, written nowhere."""
    from connector.otlp import mapping as fields
    from connector.otlp.wire import resource_key

    if signal == "traces":  # the common shape's reads (the encoder's short path)
        fromhex, fromiso = bytes.fromhex, datetime.fromisoformat

        def read(doc: dict) -> Any:
            doc[mapping.operation], doc[mapping.service], doc.get(mapping.status)
            ts = fromiso(doc[mapping.start_time])
            begin = int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000
            parent = doc.get(mapping.parent_span_id)
            return (
                fromhex(doc[mapping.trace_id]),
                fromhex(doc[mapping.span_id]),
                parent and fromhex(parent),
                begin + round(doc[mapping.duration_ms] * 1_000_000),
            )

        return read
    if signal == "logs":

        def read(doc: dict) -> Any:
            fields.parse_nanos(doc, mapping.timestamp)
            service = fields.parse_service(doc, mapping.service, required=False)
            doc.get(mapping.severity), doc.get(mapping.body)
            fields.extra_attributes(
                doc, mapping.known, fields.parse_object(doc, mapping.attributes)
            )
            fields.parse_id(doc, mapping.trace_id, 16, required=False)
            fields.parse_id(doc, mapping.span_id, 8, required=False)
            return resource_key(service, fields.parse_object(doc, mapping.resource))

        return read

    def read(doc: dict) -> Any:
        fields.parse_nanos(doc, mapping.timestamp)
        service = fields.parse_service(doc, mapping.service, required=False)
        key = resource_key(service, fields.parse_object(doc, mapping.resource))
        fields.extra_attributes(doc, mapping.known, fields.parse_object(doc, mapping.attributes))
        return key, [doc.get(f) for f in mapping.metrics]

    return read


def profile_signal(
    signal: str, script: Path, calls: int, endpoint: str | None, rounds: int, start: datetime
) -> dict[str, float]:
    """µs per event of each stage for one signal."""
    import grpc
    import otlp_rows  # bench/otlp_rows.py: the mappings of the otlp rows

    from connector import values
    from connector.otlp.signals import MAPPINGS, codec

    events, script_us = _events(script, calls, start, rounds)
    n = len(events)
    mapping = otlp_rows.MAPPINGS[signal]
    model = MAPPINGS[signal]() if mapping is None else MAPPINGS[signal].model_validate(mapping)
    c = codec(signal, model)
    loads = values.loads
    docs = [loads(e) for e in events]
    read = _reader(signal, model)

    def encode_all() -> list:
        # metrics: a fresh encoder each round, so delta series start alike
        enc = codec(signal, model) if signal == "metrics" else c
        encode = enc.encode
        return [encode(doc, model) for doc in docs]

    def text_all() -> list:
        # as the sender maps a batch: the codec's `many` (older code, profiled with
        # PYTHONPATH at another checkout, maps one event at a time, or has no from_text)
        enc = codec(signal, model) if signal == "metrics" else c  # fresh, as above
        many = getattr(enc, "many", None)
        if many is not None:
            return [item for i in range(0, n, BATCH) for item in many(events[i : i + BATCH])[0]]
        from_text = getattr(enc, "from_text", None) or (lambda e: enc.encode(loads(e), model))
        return [from_text(e) for e in events]

    items = encode_all()
    chunks = [items[i : i + BATCH] for i in range(0, n, BATCH)]
    bodies = [c.request(chunk) for chunk in chunks]
    out = {
        "events": n,
        "script": script_us,
        "parse": _best(rounds, lambda: [loads(e) for e in events], n),
        "map": _best(rounds, lambda: [read(doc) for doc in docs], n),
        "encode": _best(rounds, encode_all, n),
        "request": _best(rounds, lambda: [c.request(chunk) for chunk in chunks], n),
        "bytes": sum(map(len, bodies)) / n,
    }
    out["write"] = max(out["encode"] - out["map"], 0.0)
    checked = _checked(signal, model)
    runs = {"text": text_all}
    if checked is not None:
        runs["checked"] = lambda: [checked(loads(e), model) for e in events]
    out |= _alternating(rounds, runs, n)
    if checked is not None:
        out["checked/text"] = out["checked"] / out["text"]
    if endpoint:
        for stage, compression in (("export", None), ("gzip", grpc.Compression.Gzip)):
            channel = grpc.insecure_channel(endpoint, compression=compression)
            try:
                grpc.channel_ready_future(channel).result(timeout=10)
            except grpc.FutureTimeoutError:
                channel.close()
                raise SystemExit(
                    f"--profile: the OTLP/gRPC endpoint {endpoint} does not answer (10 s)"
                ) from None
            call = channel.unary_unary(c.signal.method)  # bytes in, bytes out
            out[stage] = _best(rounds, lambda call=call: [call(b, timeout=30) for b in bodies], n)
            channel.close()
    out["E"] = out["text"] + out["request"] + out.get("export", 0.0)
    return out


def table(results: dict[str, dict[str, float]]) -> str:
    """The stages as rows of µs per event, a column per signal."""
    names = list(results)
    lines = [
        "µs per event (fastest round); map + write = encode; E = text + request + export",
        "",
        f"| {'stage':<8} | " + " | ".join(f"{n:>16}" for n in names) + " |",
        f"|{'-' * 10}|" + "|".join("-" * 18 for _ in names) + "|",
    ]
    stages = (
        "script", "parse", "map", "write", "encode", "text", "checked", "checked/text",
        "request", "export", "gzip", "E",
    )
    for stage in stages:
        cells = [results[n].get(stage) for n in names]
        lines.append(
            f"| {stage:<8} | "
            + " | ".join(f"{'' if v is None else f'{v:.2f}':>16}" for v in cells)
            + " |"
        )
    ratios = []
    for n in names:
        r = results[n]
        ratios.append(f"{r['script'] / r['E']:.2f}" if r.get("E") else "")
    lines.append(f"| {'S/E':<8} | " + " | ".join(f"{v:>16}" for v in ratios) + " |")
    lines.append(
        f"| {'bytes':<8} | " + " | ".join(f"{results[n]['bytes']:>16.1f}" for n in names) + " |"
    )
    lines.append(
        f"| {'events':<8} | " + " | ".join(f"{results[n]['events']:>16,}" for n in names) + " |"
    )
    return "\n".join(lines)
