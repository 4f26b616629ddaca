"""Properties of every trace any topology makes (hypothesis draws the topologies): one root,
children inside their parents, a CLIENT call's SERVER child in the called service, errors
passed up exactly as `propagate` says, attribute values within their bound."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime

import yaml
from hypothesis import given
from hypothesis import strategies as st

from connector.synth import Generator, Topology, TopologyError, parse_topology
from connector.synth.semconv import span_name
from tests.harness.hypothesis_profiles import budget
from tests.harness.topology import traces, window

T0 = datetime(2026, 2, 20, 10, tzinfo=UTC)
IDS = 7  # user.id's bound


def latency():
    fixed = st.floats(0, 50).map(lambda v: {"fixed": v})
    spread = st.tuples(st.floats(0.01, 50), st.floats(1, 20)).map(
        lambda t: {"p50": t[0], "p99": t[0] * t[1]})
    return st.one_of(fixed, spread)


@st.composite
def topologies(draw) -> tuple[dict, dict[str, bool]]:
    """A topology whose services call only those after them (no loops), with error rates
    of 0 or 1 so that each span's status follows from the rules; and each service's
    `propagate` (one per service, so a span shows which rule applies to it)."""
    n = draw(st.integers(1, 5))
    names = [f"s{i}" for i in range(n)]
    propagate = {name: draw(st.booleans()) for name in names}
    services = {}
    for i, name in enumerate(names):
        ops = {}
        for k in range(draw(st.integers(1, 2))):

            def step(depth: int, i=i, name=name) -> dict:
                later = names[i + 1:]
                kinds = ["db", "publish"] + (["call"] if later else []) + (
                    ["parallel"] if depth < 2 else [])
                kind = draw(st.sampled_from(kinds))
                out: dict = {"count": draw(st.sampled_from([1, 2, "0..2", "1..3"])),
                             "propagate": propagate[name]}
                if kind == "call":
                    out["call"] = f"{draw(st.sampled_from(later))}/op0"
                elif kind == "db":
                    out["db"] = {"system": "postgresql", "operation": "SELECT"}
                    out["error_rate"] = draw(st.sampled_from([0.0, 1.0]))
                    out["latency"] = draw(latency())
                elif kind == "publish":
                    out["publish"] = {"destination": "q"}
                    if later and draw(st.booleans()):
                        out["publish"]["consumer"] = f"{draw(st.sampled_from(later))}/op0"
                    out["error_rate"] = draw(st.sampled_from([0.0, 0.0, 1.0]))
                else:
                    out["parallel"] = [step(depth + 1) for _ in range(draw(st.integers(1, 3)))]
                return out

            ops[f"op{k}"] = {
                "latency": draw(latency()),
                "error_rate": draw(st.sampled_from([0.0, 0.0, 1.0])),
                "attributes": {"user.id": {"ids": IDS}},
                "calls": [step(0) for _ in range(draw(st.integers(0, 3)))],
            }
        services[name] = {"protocol": draw(st.sampled_from(["http", "grpc"])), "operations": ops}
    roots = [{"root": f"{name}/{op}", "weight": draw(st.integers(1, 5))}
             for name, svc in services.items() for op in svc["operations"]][:3]
    return {"services": services, "traces": roots}, propagate


@budget(60)
@given(topologies(), st.integers(0, 2**32))
def test_every_trace_keeps_the_rules(drawn, seed):
    raw, propagate = drawn
    topology = Topology.model_validate(raw)
    error_rate = {(s, name): o.error_rate  # SERVER spans by route or method, CONSUMER by name
                  for s, svc in topology.services.items() for op, o in svc.operations.items()
                  for name in (span_name(svc, op), op)}
    generator = Generator(topology, random.Random(seed))
    events = [e for _ in range(20) for e in generator.trace(T0)]
    users = set()
    for spans in traces(events).values():
        by_id = {s["span_id"]: s for s in spans}
        children = defaultdict(list)
        for s in spans:
            children[s["parent_span_id"]].append(s)
        roots = children[None]
        assert len(roots) == 1 and roots[0]["kind"] in ("SERVER", "CONSUMER")
        for s in spans:
            if s["parent_span_id"] is not None:
                parent = by_id[s["parent_span_id"]]  # no orphan
                assert window(parent)[0] <= window(s)[0] <= window(s)[1] <= window(parent)[1]
            kids = children[s["span_id"]]
            if s["kind"] == "CLIENT" and "peer.service" in s["attributes"] and (
                    "db.system" not in s["attributes"]):
                (server,) = kids
                assert server["kind"] == "SERVER"
                assert server["service"] == s["attributes"]["peer.service"]
                assert server["operation"] == s["operation"]
                assert s["status"] == server["status"]  # the caller sees the callee's error
            if s["kind"] in ("SERVER", "CONSUMER"):
                users.add(s["attributes"]["user.id"])
                own = error_rate[(s["service"], s["operation"])]
                passed_up = propagate[s["service"]] and any(k["status"] == "ERROR" for k in kids)
                assert (s["status"] == "ERROR") == (own == 1.0 or passed_up)
    assert len(users) <= IDS


# -- hostile files: any text is a Topology or a TopologyError, nothing else ------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 2000), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["a/op", "1..3", "20ms", "x/y/z"]))
KEYS = st.sampled_from(["services", "traces", "operations", "calls", "call", "db", "publish",
                        "parallel", "count", "latency", "p50", "p99", "fixed", "error_rate",
                        "attributes", "ids", "one_of", "range", "root", "weight", "protocol",
                        "consumer", "destination", "system", "operation", "a", "op"])
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)), max_leaves=30)


@budget(300)
@given(st.one_of(DOCS.map(lambda d: yaml.safe_dump(d)), st.text(max_size=200),
                 st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_any_file_is_a_topology_or_a_named_problem(text):
    try:
        topology = parse_topology(text, "t.yaml")
    except TopologyError as exc:
        assert exc.problems and all(p.startswith("t.yaml") for p in exc.problems)
        return
    events = Generator(topology, random.Random(0)).trace(T0)  # a valid one generates
    assert events
