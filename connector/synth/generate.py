"""Traces (and their log lines) from a Topology: the model compiled once into plain objects,
then walked once per trace with one `random.Random`, so a file and a seed give the same
events.

Times are kept as milliseconds after the trace's timestamp while walking and written as
ISO-8601 at the end. A span's own latency is drawn first; its children are laid inside it
(sequential ones one after another, parallel ones from the same moment), and it lasts
until the later of its own latency and its children's end plus a little of its own time.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from connector.synth import semconv
from connector.synth.model import Operation, Service, Step, Topology
from connector.synth.values import Latency, Sampler, ValueSpec

__all__ = ["SIGNALS", "Generator"]

SIGNALS = ("spans", "logs", "metrics")
BEFORE, AFTER = 0.1, 0.1  # shares of a span's own latency before and after its children
NETWORK = Latency(fixed=0.4)  # a call's time on the wire, both ways, by default
DB_LATENCY = Latency(p50=2.0, p99=20.0)
SEND_LATENCY = Latency(fixed=1.0)


class _Op:
    """One operation as a SERVER span (or the CONSUMER span of a message)."""

    __slots__ = (
        "attrs",
        "draws",
        "error_attrs",
        "error_message",
        "error_rate",
        "kind",
        "latency",
        "log",
        "name",
        "resource",
        "service",
        "steps",
    )

    def __init__(
        self, service: str, svc: Service, name: str, op: Operation, kind: str, extra: dict
    ):
        self.service, self.kind = service, kind
        # a message's processing is named by the operation itself ("process orders")
        self.name = semconv.span_name(svc, name) if kind == "SERVER" else name
        self.resource = dict(svc.resource) or None
        protocol = svc.protocol if kind == "SERVER" else None
        self.attrs, self.draws = _split({**extra, **op.attributes})
        if kind == "SERVER":
            self.attrs = semconv.server(svc, name) | self.attrs
        self.latency = op.latency.sampler()
        self.error_rate = op.error_rate
        self.error_attrs, message = semconv.error_attributes(protocol)
        self.error_message = op.error_message or message
        self.steps: list[_Step] = []
        self.log = op.log or f"{self.name} done"


class _Step:
    """One entry of `calls:`, compiled: the CLIENT/PRODUCER span it makes and what follows."""

    __slots__ = (
        "attrs",
        "callee",
        "children",
        "delay",
        "draws",
        "edge",
        "error_attrs",
        "error_message",
        "error_rate",
        "high",
        "kind",
        "latency",
        "low",
        "name",
        "propagate",
        "resource",
        "service",
        "what",
    )

    def __init__(self, what: str, step: Step, service: str, svc: Service):
        self.what, self.service, self.resource = what, service, dict(svc.resource) or None
        self.low, self.high = step.count
        self.error_rate, self.propagate = step.error_rate, step.propagate
        self.attrs, self.draws = _split(step.attributes)
        self.latency = (step.latency or _DEFAULTS[what]).sampler()
        self.name = self.kind = ""
        self.error_attrs: dict = {}
        self.error_message = ""
        self.callee: _Op | None = None
        self.delay: Callable[[random.Random], float] | None = None
        self.children: list[_Step] = []
        self.edge: tuple[str, str] | None = None


_DEFAULTS = {"call": NETWORK, "db": DB_LATENCY, "publish": SEND_LATENCY, "parallel": NETWORK}


def _split(attributes: dict) -> tuple[dict, list[tuple[str, Sampler]]]:
    """Constant attributes, and those drawn per span."""
    fixed, draws = {}, []
    for key, value in attributes.items():
        if isinstance(value, ValueSpec):
            draws.append((key, value.sampler()))
        else:
            fixed[key] = value
    return fixed, draws


class Generator:
    """`trace(timestamp)` -> the events of one trace (dicts); `produce(params)` is the same as
    JSON strings, the script contract. `calls` counts every service -> service call made
    (the edges of a service graph), `messages` every producer -> consumer hand-over."""

    def __init__(
        self,
        topology: Topology,
        rng: random.Random | None = None,
        signals: tuple[str, ...] = ("spans",),
    ):
        self.topology = topology
        self.rng = rng or random.Random()
        self.logs = "logs" in signals
        self.metrics = "metrics" in signals
        self.spans = "spans" in signals
        self.tagged = len(signals) > 1  # events say what they are, for `when` routing
        self.calls: Counter[tuple[str, str]] = Counter()
        self.messages: Counter[tuple[str, str]] = Counter()
        self._ops: dict[tuple, _Op] = {}
        self._bodies: dict[str, str] = {}  # span id -> its log line, while a trace is made
        self.roots = [self._op(t.root, "SERVER") for t in topology.traces]
        weights = [t.weight for t in topology.traces]
        total, self.cumulative = 0.0, []
        for weight in weights:
            total += weight
            self.cumulative.append(total)

    # -- compiling ----------------------------------------------------------------------

    def _op(self, ref: str, kind: str, extra: dict | None = None) -> _Op:
        key = (ref, kind, tuple(sorted((extra or {}).items())))
        found = self._ops.get(key)
        if found is not None:
            return found
        service, name, op = self.topology.operation(ref)
        svc = self.topology.services[service]
        compiled = self._ops[key] = _Op(service, svc, name, op, kind, extra or {})
        compiled.steps = [self._step(service, s) for s in op.calls]
        return compiled

    def _step(self, caller: str, step: Step) -> _Step:
        here = self.topology.services[caller]
        if step.parallel is not None:
            out = _Step("parallel", step, caller, here)
            out.children = [self._step(caller, s) for s in step.parallel]
            return out
        if step.call is not None:
            out = _Step("call", step, caller, here)
            callee, name, _ = self.topology.operation(step.call)
            svc = self.topology.services[callee]
            out.callee = self._op(step.call, "SERVER")
            out.name, out.kind = out.callee.name, "CLIENT"
            out.attrs = semconv.client(callee, svc, name) | out.attrs
            out.error_attrs, out.error_message = semconv.error_attributes(svc.protocol)
            out.edge = (caller, callee)
            return out
        if step.db is not None:
            out = _Step("db", step, caller, here)
            out.name, attrs = semconv.db_client(step.db)
            out.kind, out.attrs = "CLIENT", attrs | out.attrs
            out.error_attrs, out.error_message = semconv.error_attributes(None)
            return out
        out = _Step("publish", step, caller, here)
        out.name, attrs = semconv.producer(step.publish)
        out.kind, out.attrs = "PRODUCER", attrs | out.attrs
        out.error_attrs, out.error_message = semconv.error_attributes(None)
        if step.publish.consumer is not None:
            out.callee = self._op(step.publish.consumer, "CONSUMER", semconv.consumer(step.publish))
            out.delay = step.publish.delay.sampler()
            out.edge = (caller, out.callee.service)
        return out

    # -- walking ------------------------------------------------------------------------

    def produce(self, params: dict) -> list[str]:
        dumps = json.dumps
        return [dumps(event) for event in self.trace(params["timestamp"])]

    def trace(self, timestamp: datetime) -> list[dict]:
        """The events of one trace of a type drawn by weight (plus the traces of the
        messages it sends), root at `timestamp`."""
        rng = self.rng
        if len(self.roots) == 1:
            root = self.roots[0]
        else:
            root = rng.choices(self.roots, cum_weights=self.cumulative)[0]
        spans: list[dict] = []
        self._run(root, f"{rng.getrandbits(128):032x}", None, 0.0, spans, None)
        return self._finish(timestamp, spans)

    def _run(
        self,
        op: _Op,
        trace_id: str,
        parent: str | None,
        start: float,
        out: list[dict],
        link: dict | None,
    ) -> tuple[float, bool, dict]:
        """The span of `op` and everything under it -> (its end, failed, the span)."""
        rng = self.rng
        span = {
            "trace_id": trace_id,
            "span_id": f"{rng.getrandbits(64):016x}",
            "parent_span_id": parent,
            "service": op.service,
            "operation": op.name,
            "kind": op.kind,
            "start_time": start,
        }
        out.append(span)
        own = op.latency(rng)
        cursor, failed = start + own * BEFORE, False
        for step in op.steps:
            cursor, bad = self._step_run(step, trace_id, span["span_id"], cursor, out)
            failed = failed or bad
        end = max(start + own, cursor + own * AFTER)
        if op.error_rate and rng.random() < op.error_rate:
            failed = True
        attrs = dict(op.attrs)
        for key, draw in op.draws:
            attrs[key] = draw(rng)
        self._close(span, end, attrs, failed, op.error_attrs, op.error_message, op.resource, op.log)
        if link is not None:
            span["links"] = [link]
        return end, failed, span

    def _step_run(
        self, step: _Step, trace_id: str, parent: str, start: float, out: list[dict]
    ) -> tuple[float, bool]:
        """Every repetition of a step -> (when the last ends, an error to pass up)."""
        rng = self.rng
        n = step.low if step.low == step.high else rng.randint(step.low, step.high)
        end, failed = start, False
        for _ in range(n):
            if step.what == "parallel":  # each repetition is one more branch
                for child in step.children:
                    child_end, bad = self._step_run(child, trace_id, parent, start, out)
                    end, failed = max(end, child_end), failed or bad
                continue
            end, bad = self._client(step, trace_id, parent, end, out)
            failed = failed or bad
        return end, failed and step.propagate

    def _client(
        self, step: _Step, trace_id: str, parent: str, start: float, out: list[dict]
    ) -> tuple[float, bool]:
        """The CLIENT (or PRODUCER) span of one call, and what it reaches."""
        rng = self.rng
        span = {
            "trace_id": trace_id,
            "span_id": f"{rng.getrandbits(64):016x}",
            "parent_span_id": parent,
            "service": step.service,
            "operation": step.name,
            "kind": step.kind,
            "start_time": start,
        }
        out.append(span)
        wire = step.latency(rng)
        if step.what == "call":
            self.calls[step.edge] += 1
            end, failed, _ = self._run(
                step.callee, trace_id, span["span_id"], start + wire / 2, out, None
            )
            end += wire / 2
        else:
            end = start + wire
            failed = bool(step.error_rate) and rng.random() < step.error_rate
        attrs = dict(step.attrs)
        for key, draw in step.draws:
            attrs[key] = draw(rng)
        self._close(
            span, end, attrs, failed, step.error_attrs, step.error_message, step.resource, None
        )
        if step.what == "publish" and step.callee is not None and not failed:
            self.messages[step.edge] += 1
            link = {"trace_id": trace_id, "span_id": span["span_id"]}
            own_trace = f"{rng.getrandbits(128):032x}"
            self._run(step.callee, own_trace, None, end + step.delay(rng), out, link)
        return end, failed

    def _close(
        self,
        span: dict,
        end: float,
        attrs: dict,
        failed: bool,
        error_attrs: dict,
        message: str,
        resource: dict | None,
        log: str | None,
    ) -> None:
        span["duration_ms"] = end  # the end, until _finish: both rounded alike there
        if self.logs:
            self._bodies[span["span_id"]] = (
                message if failed else (log or f"{span['operation']} done")
            )
        if failed:
            attrs.update(error_attrs)
            span["status"] = "ERROR"
            span["error_message"] = message  # the otlp mapping adds the `exception` event
        else:
            span["status"] = "OK"
        span["attributes"] = attrs
        if resource:
            span["resource"] = resource

    def _finish(self, timestamp: datetime, spans: list[dict]) -> list[dict]:
        """Offsets -> ISO times, and the log lines."""
        events: list[dict] = []
        for span in spans:
            # whole microseconds, start and end rounded alike: a child stays inside its parent
            begin = round(span["start_time"] * 1000)
            start = timestamp + timedelta(microseconds=begin)
            span["start_time"] = start.isoformat()
            span["duration_ms"] = (round(span["duration_ms"] * 1000) - begin) / 1000
            if self.tagged:
                span["signal"] = "span"
            if self.spans:
                events.append(span)
            if self.logs:
                events.append(self._log(span, start))
            if self.metrics and span["kind"] in ("SERVER", "CONSUMER"):
                events.append(self._red(span, start))
        return events

    @staticmethod
    def _red(span: dict, start: datetime) -> dict:
        """The span's RED observation: one request, an error or not, its duration; the ids
        for the duration histogram's exemplar (the metrics mapping's `exemplars`)."""
        failed = span["status"] == "ERROR"
        red = {
            "signal": "metric",
            "timestamp": (start + timedelta(milliseconds=span["duration_ms"])).isoformat(),
            "service": span["service"],
            "attributes": {
                "span.name": span["operation"],
                "span.kind": span["kind"],
                "status.code": "ERROR" if failed else "OK",
            },
            "requests": 1,
            "errors": int(failed),
            "duration_ms": span["duration_ms"],
            "trace_id": span["trace_id"],
            "span_id": span["span_id"],
        }
        if span.get("resource"):
            red["resource"] = span["resource"]
        return red

    def _log(self, span: dict, start: datetime) -> dict:
        failed = span["status"] == "ERROR"
        end = start + timedelta(milliseconds=span["duration_ms"])
        body = self._bodies.pop(span["span_id"])
        log = {
            "signal": "log",
            "timestamp": end.isoformat(),
            "severity": "ERROR" if failed else "INFO",
            "body": body,
            "service": span["service"],
            "trace_id": span["trace_id"],
            "span_id": span["span_id"],
        }
        if span.get("resource"):
            log["resource"] = span["resource"]
        return log
