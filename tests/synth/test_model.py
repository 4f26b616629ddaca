"""The topology model in-process: span kinds and their attributes, latency, errors, weights,
cardinality, determinism, and every problem a topology file can have, named by line."""

from __future__ import annotations

import itertools
import json
import random
import statistics
from collections import Counter
from datetime import UTC, datetime
from textwrap import dedent

import pytest

from connector.otlp.logs import encode_log
from connector.otlp.mapping import DEFAULT_MAPPING, LogMapping
from connector.otlp.traces import encode_span
from connector.synth import Generator, TopologyError, load_topology, parse_topology
from tests.harness.cli import EXAMPLES, no_traceback, run_cli
from tests.harness.topology import traces, window

T0 = datetime(2026, 2, 20, 10, tzinfo=UTC)


def generate(text: str, n: int = 1, seed: int = 1, signals=("spans",)) -> list[dict]:
    gen = Generator(parse_topology(dedent(text)), random.Random(seed), signals)
    return [e for _ in range(n) for e in gen.trace(T0)]


SHOP = load_topology(EXAMPLES / "topology" / "shop.yaml")


def test_every_example_event_maps_to_otlp_unchanged():
    gen = Generator(SHOP, random.Random(5), ("spans", "logs"))
    kinds = Counter()
    for _ in range(300):
        for event in gen.trace(T0):
            doc = json.loads(json.dumps(event))  # as an output receives it
            if event["signal"] == "log":
                encode_log(doc, LogMapping())
            else:
                encode_span(doc, DEFAULT_MAPPING)
                kinds[event["kind"]] += 1
    assert set(kinds) == {"SERVER", "CLIENT", "PRODUCER", "CONSUMER"}


def test_calls_are_client_spans_with_a_server_child_in_the_called_service():
    events = generate("""
        services:
          web:
            operations:
              GET /a:
                calls: [{call: api/api.Svc/Get}]
          api:
            protocol: grpc
            port: 9090
            operations:
              api.Svc/Get: {}
        traces: [{root: web/GET /a}]
        """)
    root, client, server = events
    assert root["kind"] == "SERVER" and root["parent_span_id"] is None
    assert root["attributes"]["http.request.method"] == "GET"
    assert root["attributes"]["http.route"] == "/a"
    assert client["kind"] == "CLIENT" and client["service"] == "web"
    assert client["parent_span_id"] == root["span_id"]
    assert client["attributes"].items() >= {
        "server.address": "api", "server.port": 9090, "peer.service": "api",
        "rpc.system": "grpc", "rpc.service": "api.Svc", "rpc.method": "Get",
    }.items()
    assert server["kind"] == "SERVER" and server["service"] == "api"
    assert server["parent_span_id"] == client["span_id"]
    assert server["operation"] == client["operation"] == "api.Svc/Get"


def test_database_and_messaging_spans():
    events = generate("""
        services:
          orders:
            operations:
              POST /orders:
                calls:
                  - db: {system: postgresql, operation: INSERT, collection: orders,
                         namespace: shop, address: orders-db, port: 5432}
                  - publish: {destination: order-events, consumer: worker/handle}
          worker:
            operations:
              handle: {latency: 3ms}
        traces: [{root: orders/POST /orders}]
        """)
    by_kind = {e["kind"]: e for e in events}
    db = by_kind["CLIENT"]
    assert db["operation"] == "INSERT orders"
    assert db["attributes"].items() >= {
        "db.system": "postgresql", "db.operation.name": "INSERT", "db.collection.name": "orders",
        "db.namespace": "shop", "server.address": "orders-db", "server.port": 5432,
    }.items()
    producer, consumer = by_kind["PRODUCER"], by_kind["CONSUMER"]
    assert producer["operation"] == "publish order-events"
    assert producer["attributes"]["messaging.destination.name"] == "order-events"
    assert producer["attributes"]["messaging.operation.type"] == "send"
    assert consumer["service"] == "worker" and consumer["parent_span_id"] is None
    assert consumer["operation"] == "handle"
    assert consumer["trace_id"] != producer["trace_id"]
    assert consumer["links"] == [{"trace_id": producer["trace_id"],
                                  "span_id": producer["span_id"]}]
    assert consumer["attributes"]["messaging.operation.type"] == "process"
    assert window(consumer)[0] >= window(producer)[1]  # processed after it was sent


def test_latency_fixed_and_lognormal_from_p50_p99():
    fixed = generate("""
        services: {a: {operations: {op: {latency: 7.5ms}}}}
        traces: [{root: a/op}]
        """)
    assert fixed[0]["duration_ms"] == 7.5
    many = generate("""
        services: {a: {operations: {op: {latency: {p50: 20ms, p99: 200ms}}}}}
        traces: [{root: a/op}]
        """, n=20_000)
    durations = sorted(e["duration_ms"] for e in many)
    assert statistics.median(durations) == pytest.approx(20, rel=0.05)
    assert durations[int(0.99 * len(durations))] == pytest.approx(200, rel=0.12)


def test_a_parent_lasts_as_long_as_its_children_need():
    events = generate("""
        services:
          a:
            operations:
              op:
                latency: 1ms
                calls:
                  - db: {system: redis, operation: GET}
                    latency: 10ms
                    count: 3
                  - parallel:
                      - db: {system: redis, operation: SET}
                        latency: 20ms
                      - db: {system: redis, operation: DEL}
                        latency: 5ms
        traces: [{root: a/op}]
        """)
    root, *children = events
    gets = [c for c in children if c["operation"] == "GET"]
    assert len(gets) == 3
    for before, after in itertools.pairwise(gets):
        assert window(after)[0] == window(before)[1]  # one after another
    parallel = [c for c in children if c["operation"] in ("SET", "DEL")]
    assert window(parallel[0])[0] == window(parallel[1])[0] == window(gets[-1])[1]
    assert root["duration_ms"] >= 3 * 10 + 20


def test_errors_propagate_as_the_topology_says():
    text = """
        services:
          a:
            operations:
              op:
                calls:
                  - call: b/GET /x
                    propagate: %s
          b:
            operations:
              GET /x: {error_rate: 1.0, error_message: out of stock}
        traces: [{root: a/op}]
        """
    root, client, server = generate(text % "true")
    assert server["status"] == client["status"] == root["status"] == "ERROR"
    assert server["error_message"] == "out of stock"
    assert server["attributes"]["http.response.status_code"] == 500
    assert client["attributes"]["error.type"] == "500"
    root, client, server = generate(text % "false")
    assert (server["status"], client["status"], root["status"]) == ("ERROR", "ERROR", "OK")


def test_an_error_carries_an_exception_event_on_the_wire():
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    (span,) = generate("""
        services: {a: {operations: {op: {error_rate: 1}}}}
        traces: [{root: a/op}]
        """)
    _, _, raw = encode_span(json.loads(json.dumps(span)), DEFAULT_MAPPING)
    decoded = Span.FromString(raw)
    assert decoded.status.code == 2 and decoded.kind == Span.SPAN_KIND_SERVER
    assert [e.name for e in decoded.events] == ["exception"]


def test_weights_between_trace_types():
    events = generate("""
        services: {a: {operations: {checkout: {}, browse: {}}}}
        traces: [{root: a/checkout, weight: 3}, {root: a/browse, weight: 10}]
        """, n=13_000)
    counts = Counter(e["operation"] for e in events)
    assert counts["GET /checkout"] / counts["GET /browse"] == pytest.approx(0.3, rel=0.08)


def test_attribute_values_stay_within_their_cardinality():
    events = generate("""
        services:
          a:
            operations:
              op:
                attributes:
                  user.id: {ids: 50, prefix: u-}
                  tier: {one_of: {gold: 1, free: 9}}
                  items: {range: [1, 4]}
                  fixed: 7
        traces: [{root: a/op}]
        """, n=5000)
    values = {key: {e["attributes"][key] for e in events} for key in ("user.id", "tier", "items")}
    assert len(values["user.id"]) <= 50 and all(v.startswith("u-") for v in values["user.id"])
    assert values["tier"] == {"gold", "free"} and values["items"] == {1, 2, 3, 4}
    assert {e["attributes"]["fixed"] for e in events} == {7}


def test_the_same_file_and_seed_give_the_same_traces():
    a = Generator(SHOP, random.Random(7))
    b = Generator(SHOP, random.Random(7))
    c = Generator(SHOP, random.Random(8))
    first = [a.produce({"timestamp": T0}) for _ in range(50)]
    assert first == [b.produce({"timestamp": T0}) for _ in range(50)]
    assert first != [c.produce({"timestamp": T0}) for _ in range(50)]
    assert a.calls == b.calls and sum(a.calls.values()) > 0


def test_logs_carry_their_span_ids():
    events = generate("""
        services: {a: {operations: {op: {log: order placed}}}}
        traces: [{root: a/op}]
        """, signals=("spans", "logs"))
    span, log = events
    assert span["signal"] == "span" and log["signal"] == "log"
    assert (log["trace_id"], log["span_id"]) == (span["trace_id"], span["span_id"])
    assert log["body"] == "order placed" and log["severity"] == "INFO"


def test_the_cli_runs_the_plugin_and_repeats_with_a_seed(tmp_path):
    config = EXAMPLES / "topology" / "tracing-config.yaml"
    one = run_cli("run", config, "--seed", "4", "--max-events", "200")
    two = run_cli("run", config, "--seed", "4", "--max-events", "200")
    assert one.code == 0, one.stderr
    assert one.lines == two.lines and len(one.lines) == 200
    spans = [json.loads(line) for line in one.lines]
    for trace in list(traces(spans).values())[:-1]:  # the last may be cut by --max-events
        assert len(trace) == 13  # 6 services' SERVER spans, 5 CLIENT calls, 2 databases


BAD = [
    ("services: {a: {operations: {}}}\ntraces: [{root: a/x}]\n",
     ["t.yaml:1: services.a.operations: Dictionary should have at least 1 item after "
      "validation, not 0"]),
    ("services:\n  a:\n    operations:\n      op:\n        latency: {p50: 9ms, p99: 1ms}\n"
     "traces: [{root: a/op}]\n",
     ["t.yaml:5: services.a.operations.op.latency: need 0 < p50 <= p99, got p50 9.0 ms, "
      "p99 1.0 ms"]),
    ("services:\n  a:\n    operations:\n      op:\n        calls:\n          - call: b/op\n"
     "traces: [{root: a/op}]\n",
     ["t.yaml:6: services.a.operations.op.calls[0].call: unknown service 'b' (expected "
      "service/operation; services: a)"]),
    ("services:\n  a:\n    operations:\n      op:\n        calls: [{call: a/op}]\n"
     "traces: [{root: a/op}]\n",
     ["t.yaml:5: services.a.operations.op.calls: calls loop: a/op -> a/op"]),
    ("services:\n  a:\n    operations:\n      op:\n        calls:\n          - call: a/b\n"
     "            error_rate: 0.5\n      b: {}\ntraces: [{root: a/op}]\n",
     ["t.yaml:6: services.a.operations.op.calls[0]: error_rate on a call: set it on the "
      "called operation (its SERVER span fails, the CLIENT span sees the error)"]),
    ("services:\n  a:\n    operations:\n      op:\n        calls:\n"
     "          - {db: {system: x, operation: y}, count: 5..2}\ntraces: [{root: a/op}]\n",
     ["t.yaml:6: services.a.operations.op.calls[0].count: a count range needs "
      "0 <= low <= high <= 1000, got '5..2'"]),
    ("services:\n  a:\n    operations:\n      op:\n        attributes:\n"
     "          u: {ids: 10, one_of: [a]}\ntraces: [{root: a/op}]\n",
     ["t.yaml:6: services.a.operations.op.attributes.u: give exactly one of ids, one_of, range"]),
    ("services: {a: {operations: {op: {}}}}\ntraces: [{root: a/op, weight: 0}]\nextra: 1\n",
     ["t.yaml:2: traces[0].weight: Input should be greater than 0", "t.yaml:3: extra: unknown key"]),
    ("services: [a, b]\ntraces: []\n",
     ["t.yaml:1: services: Input should be a valid dictionary",
      "t.yaml:2: traces: List should have at least 1 item after validation, not 0"]),
    ("services: {a: {operations: {op: {calls: [{db: {system: x, operation: y}, "
     "publish: {destination: q}}]}}}}\ntraces: [{root: a/op}]\n",
     ["t.yaml:1: services.a.operations.op.calls[0]: a call step needs exactly one of call, db, "
      "publish, parallel; got ['db', 'publish']"]),
    ("- just a list\n", ["t.yaml:1: expected a map with services and traces"]),
    ("", ["t.yaml:1: expected a map with services and traces"]),
    ("services: {a: {operations: {op: {\n", ["t.yaml:2: invalid YAML: expected the node "
                                              "content, but found '<stream end>'"]),
    ("services:\n  a:\n    operations:\n      op:\n        calls:\n"
     "          - {call: a/b, count: 1000}\n      b:\n        calls:\n"
     "          - {db: {system: x, operation: y}, count: 1000}\ntraces: [{root: a/op}]\n",
     ["t.yaml:6: services.a.operations.op.calls: a trace from here can reach 1,002,001 spans "
      "(at most 100,000)"]),
]


@pytest.mark.parametrize(("text", "problems"), BAD)
def test_a_bad_topology_is_named_by_line_and_key(text, problems):
    with pytest.raises(TopologyError) as caught:
        parse_topology(text, "t.yaml")
    assert caught.value.problems == problems


def test_odd_bytes_and_a_bad_file_are_config_errors_exit_2(write, tmp_path):
    config = write("c.yaml", """
        input: [{cron: {expression: "* * * * * *", start: "2026-02-20T10:00:00Z", end: "+5s"}}]
        event: {topology: {path: t.yaml}}
        """)
    cases = [
        (b"services: {a: \xff}\n", "t.yaml: not UTF-8 at byte offset 14 (byte 0xff)"),
        (b"services: {a: {operations: {op: {latency: {p50: x}}}}}\ntraces: [{root: a/op}]\n",
         "t.yaml:1: services.a.operations.op.latency.p50: expected a duration like 20ms"),
        (b"services: !!python/object:os.system {}\n", "t.yaml:1: invalid YAML"),
        (b"services: {a: {operations: {op: {attributes: {x: [1, 2]}}}}}\n"
         b"traces: [{root: a/op}]\n", "t.yaml:1: services.a.operations.op.attributes.x: Input"),
    ]
    for data, expected in cases:
        (tmp_path / "t.yaml").write_bytes(data)
        result = run_cli("validate", config)
        assert result.code == 2, result.stderr
        assert "event.topology.path: " in result.stderr and expected in result.stderr
        no_traceback(result.stderr)
    (tmp_path / "t.yaml").unlink()
    result = run_cli("validate", config)
    assert result.code == 2 and "event.topology.path: topology not found" in result.stderr
    (tmp_path / "t.yaml").mkdir()
    result = run_cli("validate", config)
    assert result.code == 2 and "is a directory, not a file" in result.stderr
    no_traceback(result.stderr)
    both = write("both.yaml", """
        input: [{cron: {expression: "* * * * * *"}}]
        event: {topology: {path: t.yaml}, script: {path: s.py}}
        """)
    result = run_cli("validate", both)
    assert result.code == 2 and "event: give either script or topology, not both" in result.stderr


def test_count_bounds_are_read_in_every_form():
    for count, expected in (("2", {2}), ("'1..3'", {1, 2, 3}), ("[0, 1]", {0, 1})):
        events = generate(f"""
            services:
              a:
                operations:
                  op:
                    calls: [{{db: {{system: x, operation: y}}, count: {count}}}]
            traces: [{{root: a/op}}]
            """, n=300)
        per_trace = Counter(e["trace_id"] for e in events if e["kind"] == "CLIENT")
        seen = {per_trace.get(t, 0) for t in {e["trace_id"] for e in events}}
        assert seen == expected, count


def test_the_shop_passes_the_trace_check():
    result = run_cli("preview", EXAMPLES / "topology" / "shop-config.yaml", "--seed", "3",
                     "--check-traces", "--events", "3000")
    assert result.code == 0, result.stdout[-2000:] + result.stderr
    assert "0 broken" in result.stdout


def test_a_script_uses_the_library():
    config = EXAMPLES / "topology" / "library-config.yaml"
    result = run_cli("run", config, "--seed", "2")
    assert result.code == 0, result.stderr
    spans = [json.loads(line) for line in result.lines]
    roots = [s for s in spans if s["parent_span_id"] is None and s["kind"] == "SERVER"]
    assert len(roots) == 50 and {r["attributes"]["app.variant"] for r in roots} == {"a", "b"}
    assert result.lines == run_cli("run", config, "--seed", "2").lines
