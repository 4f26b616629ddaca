"""The shop topology through the CLI into the real Jaeger: its dependencies API shows the
topology's edges and nothing else, with the call counts the model made for that seed."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import yaml

from connector.synth import Generator, load_topology
from tests.harness.cli import EXAMPLES, run_cli
from tests.harness.topology import dependencies, edges, renamed

TRACES = 200


def test_jaegers_dependencies_are_the_models_edges_with_its_exact_counts(jaeger, write):
    suffix = uuid.uuid4().hex[:8]  # the shared Jaeger keeps other runs' services
    raw = yaml.safe_load((EXAMPLES / "topology" / "shop.yaml").read_text())
    topology = write("shop.yaml", yaml.safe_dump(renamed(raw, suffix), sort_keys=False))
    config = write("c.yaml", f"""
        mode: backfill
        input:
          - rate: {{per_second: 20, start: "-20m", end: "-19m50s"}}
        event:
          topology: {{path: shop.yaml}}
        output:
          - otlp: {{endpoint: "{jaeger['otlp_grpc']}"}}
        """)
    seed = uuid.uuid4().int % 2**32  # the same seed makes the same trace ids: Jaeger would merge
    result = run_cli("run", config, "--seed", str(seed))
    assert result.code == 0, result.stderr
    assert result.summary("otlp-0")["failed"] == 0

    # the model, seeded as the plugin seeds it, makes the same traces in-process
    random.seed(seed)
    model = Generator(load_topology(topology), random.Random(random.getrandbits(64)))
    events = [e for _ in range(TRACES) for e in model.trace(datetime.now(UTC))]
    assert result.summary("otlp-0")["delivered"] == len(events)
    expected = edges(events)
    calls = {pair: n for pair, n in expected.items() if pair[0] != pair[1]}
    assert calls == dict(model.calls)  # every service -> service call is a CLIENT->SERVER pair
    assert len(calls) == 11 and min(calls.values()) > 0

    services = {f"{name}-{suffix}" for name in raw["services"]}
    found = dependencies(jaeger["query"], services, sum(expected.values()))
    # each pair a span's parent makes, its own service's (SERVER -> CLIENT) included;
    # the queue's hand-over is a link, no parent, so no edge
    assert found == expected
    assert {p for p in found if p[0] != p[1]} == set(model.calls)
    assert not set(model.messages) & set(calls)
