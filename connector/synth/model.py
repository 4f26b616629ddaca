"""The topology file, as validated models: services, their operations, the calls between them
and the trace types. `references()` then checks what one model cannot see alone: that every
`service/operation` named exists, that calls do not loop, that a trace stays bounded.

```yaml
services:
  frontend:
    protocol: http                     # http (default) | grpc
    resource: {service.version: 1.2.0}
    operations:
      GET /cart:
        latency: {p50: 20ms, p99: 180ms}
        error_rate: 0.01
        attributes: {user.id: {ids: 1000, prefix: u-}}
        calls:
          - call: cart/CartService/GetCart  # service/operation: CLIENT here, SERVER there
            count: 1..2
          - parallel:
              - db: {system: redis, operation: GET}
              - publish: {destination: orders, consumer: worker/process orders}
traces:
  - {root: frontend/GET /cart, weight: 3}
```
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from connector.fields import Strict
from connector.synth.values import Latency, ValueSpec

__all__ = ["Db", "Operation", "Publish", "Service", "Step", "Topology", "TraceType", "references"]

Value = Annotated[
    Annotated[ValueSpec, Tag("spec")] | Annotated[str | bool | int | float, Tag("scalar")],
    Discriminator(lambda v: "spec" if isinstance(v, dict | ValueSpec) else "scalar"),
]  # a map is a ValueSpec, anything else a constant: one error, not one per member
Attributes = dict[str, Value]
MAX_SPANS = 100_000  # spans one trace may reach at the top of every count range
DEFAULT_LATENCY = Latency(p50=5.0, p99=50.0)


def _count(value: Any) -> tuple[int, int]:
    """`3`, `1..3` or `[1, 3]` -> (low, high)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a count like 2 or 1..3, got {value!r}")
    if isinstance(value, int):
        low = high = value
    elif isinstance(value, str) and ".." in value:
        try:
            low, high = (int(part) for part in value.split("..", 1))
        except ValueError:
            raise ValueError(f"expected a count like 2 or 1..3, got {value!r}") from None
    elif (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        low, high = value
    else:
        raise ValueError(f"expected a count like 2 or 1..3, got {value!r}")
    if not 0 <= low <= high <= 1000:
        raise ValueError(f"a count range needs 0 <= low <= high <= 1000, got {value!r}")
    return low, high


class Db(Strict):
    """A database call: a CLIENT span in the caller, no span in the database."""

    system: str = Field(min_length=1, description="db.system: postgresql, redis, mongodb...")
    operation: str = Field(min_length=1, description="db.operation.name: SELECT, GET...")
    collection: str | None = None  # db.collection.name
    namespace: str | None = None  # db.namespace
    query: str | None = None  # db.query.text
    address: str | None = None  # server.address (default: the system's name)
    port: int | None = Field(None, ge=1, le=65535)


class Publish(Strict):
    """A message sent to a queue: a PRODUCER span here; the CONSUMER span, when a
    `consumer` is named, roots a trace of its own that links back to it."""

    system: str = "kafka"  # messaging.system
    destination: str = Field(min_length=1)  # messaging.destination.name
    consumer: str | None = None  # service/operation that processes the message
    delay: Latency = Latency(fixed=5.0)  # from the send to the processing's start


class Step(Strict):
    """One entry of `calls:`: exactly one of call, db, publish, parallel."""

    call: str | None = None
    db: Db | None = None
    publish: Publish | None = None
    parallel: list[Step] | None = None
    count: tuple[int, int] = (1, 1)
    latency: Latency | None = None  # db/publish: the client span's; call: the network's
    error_rate: float = Field(0.0, ge=0.0, le=1.0)
    propagate: bool = True  # an error here makes the calling operation fail too
    attributes: Attributes = Field(default_factory=dict)

    @field_validator("count", mode="before")
    @classmethod
    def _count(cls, value: Any) -> tuple[int, int]:
        return _count(value)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        given = [k for k in ("call", "db", "publish", "parallel") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a call step needs exactly one of call, db, publish, parallel; "
                f"got {given or 'none'}"
            )
        if self.call is not None and self.error_rate:
            raise ValueError(
                "error_rate on a call: set it on the called operation (its SERVER span fails, "
                "the CLIENT span sees the error)"
            )
        if self.parallel is not None and not self.parallel:
            raise ValueError("parallel needs at least one step")
        return self


class Operation(Strict):
    latency: Latency = DEFAULT_LATENCY  # the span's own time; it grows to fit its children
    error_rate: float = Field(0.0, ge=0.0, le=1.0)
    error_message: str | None = None  # default: by protocol ("HTTP 500", "UNKNOWN"...)
    attributes: Attributes = Field(default_factory=dict)
    calls: list[Step] = Field(default_factory=list)
    log: str | None = None  # the log line of each span (default: "<operation> done")


class Service(Strict):
    protocol: Literal["http", "grpc"] = "http"
    resource: dict[str, str | bool | int | float] = Field(default_factory=dict)
    address: str | None = None  # server.address its callers use (default: the name)
    port: int = Field(8080, ge=1, le=65535)
    operations: dict[str, Operation] = Field(min_length=1)


class TraceType(Strict):
    root: str  # service/operation
    weight: float = Field(1.0, gt=0)


class Topology(Strict):
    services: dict[str, Service] = Field(min_length=1)
    traces: list[TraceType] = Field(min_length=1)

    def operation(self, ref: str) -> tuple[str, str, Operation] | None:
        """`service/operation` -> (service, operation, Operation); the operation may hold
        slashes itself (`cart/CartService/GetCart`)."""
        service, _, name = ref.partition("/")
        found = self.services.get(service)
        if found is None or name not in found.operations:
            return None
        return service, name, found.operations[name]


Loc = tuple[str | int, ...]


def references(topology: Topology) -> list[tuple[Loc, str]]:
    """(where, problem) for every name that points nowhere, every loop of calls and a
    trace that could grow past MAX_SPANS."""
    problems: list[tuple[Loc, str]] = []
    for n, trace in enumerate(topology.traces):
        if topology.operation(trace.root) is None:
            problems.append((("traces", n, "root"), _unknown(topology, trace.root)))
    for service, svc in topology.services.items():
        for name, op in svc.operations.items():
            base = ("services", service, "operations", name, "calls")
            for loc, step in _steps(op.calls, base):
                for key, ref in (("call", step.call), ("consumer", _consumer(step))):
                    if ref is not None and topology.operation(ref) is None:
                        where = (*loc, key) if key == "call" else (*loc, "publish", key)
                        problems.append((where, _unknown(topology, ref)))
    if problems:
        return problems
    sizes: dict[str, float] = {}
    for service, svc in topology.services.items():
        for name in svc.operations:
            try:
                size = _size(topology, f"{service}/{name}", sizes, ())
            except _Loop as loop:
                where = ("services", service, "operations", name, "calls")
                return [(where, f"calls loop: {' -> '.join(loop.path)}")]
            if size > MAX_SPANS:
                where = ("services", service, "operations", name, "calls")
                problems.append(
                    (
                        where,
                        f"a trace from here can reach {size:,.0f} spans (at most {MAX_SPANS:,})",
                    )
                )
    return problems


def _unknown(topology: Topology, ref: str) -> str:
    service, _, name = ref.partition("/")
    if service not in topology.services:
        return f"unknown service '{service}' (expected service/operation; services: " + (
            ", ".join(topology.services) + ")"
        )
    return f"service '{service}' has no operation '{name}' (it has: " + (
        ", ".join(topology.services[service].operations) + ")"
    )


def _consumer(step: Step) -> str | None:
    return step.publish.consumer if step.publish is not None else None


def _steps(steps: list[Step], loc: Loc) -> list[tuple[Loc, Step]]:
    out = []
    for n, step in enumerate(steps):
        out.append(((*loc, n), step))
        if step.parallel is not None:
            out += _steps(step.parallel, (*loc, n, "parallel"))
    return out


class _Loop(Exception):
    def __init__(self, path: tuple[str, ...]):
        super().__init__(path)
        self.path = path


def _size(topology: Topology, ref: str, sizes: dict[str, float], path: tuple[str, ...]) -> float:
    """The most spans one call of `ref` makes, in its trace (consumers root their own)."""
    if ref in path:
        raise _Loop((*path[path.index(ref) :], ref))
    if ref in sizes:
        return sizes[ref]
    _, _, op = topology.operation(ref)
    size = 1 + _steps_size(topology, op.calls, sizes, (*path, ref))
    sizes[ref] = size
    return size


def _steps_size(topology: Topology, steps: list[Step], sizes: dict, path: tuple) -> float:
    total = 0.0
    for step in steps:
        if step.call is not None:
            one = 1 + _size(topology, step.call, sizes, path)  # CLIENT + the callee's tree
        elif step.parallel is not None:
            one = _steps_size(topology, step.parallel, sizes, path)
        else:
            one = 1
            if (consumer := _consumer(step)) is not None:
                _size(topology, consumer, sizes, path)  # a loop through a queue never ends
        total += one * step.count[1]
    return total
