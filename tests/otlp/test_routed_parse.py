"""One JSON decode per event shared by `when` and the otlp output: the events a `when` rule
parsed reach the output parsed (Batch.docs), are encoded from those, and map or fail
exactly as when the output parses them itself."""

from __future__ import annotations

import json

from connector import values
from connector.otlp import sender as sender_module
from connector.outputs.base import Batch, When, parse_event
from connector.outputs.fanout import Router
from tests.harness.cli import run_cli
from tests.harness.jaeger import wait_for_trace

TRACE = "5a" * 16


def span(service: str, span_id: str, **more) -> str:
    return json.dumps({"trace_id": TRACE, "span_id": span_id, "service": service,
                       "operation": "op", "start_time": "2026-02-20T10:00:00+00:00",
                       "duration_ms": 1, **more})


EVENTS = [span("a", "a1" * 8), span("b", "b1" * 8), "not json", span("a", "xyz"), "[1, 2",
          span("b", "b2" * 8, duration_ms=2**70), '{"service": "a", "x": "\\ud800"}']


class _Handle:
    def __init__(self, rule):
        self.rule = rule


def test_the_router_hands_each_output_the_docs_of_its_events():
    rule = When(field="service", equals="a")
    router = Router([_Handle(None), _Handle((rule.key, rule.matcher()))])
    batch = Batch(list(EVENTS))
    everything, routed = router.select(batch)
    assert everything is batch and batch.docs == [parse_event(e) for e in EVENTS]
    assert routed.events == [EVENTS[0], EVENTS[3], EVENTS[6]]
    assert routed.docs == [values.loads(e) for e in routed.events]


def test_the_sender_encodes_the_docs_it_is_given_and_parses_the_rest(tmp_path):
    """What a parsed doc maps to is what its text maps to; a None (not JSON) is parsed from
    the text, so it fails with the parser's own reason."""
    from connector.otlp.batches import BatchConfig
    from connector.otlp.compiled import each
    from connector.otlp.signals import codec
    from connector.outputs.base import Acks

    parsed: list[str] = []

    def run(docs, name):
        c = codec("traces")
        text = c.from_text
        c.from_text = lambda event: parsed.append(event) or text(event)
        c.many = each(c.from_text)
        acks = Acks("otlp-0", "otlp", tmp_path / f"{name}.jsonl")
        s = sender_module.Sender(c, lambda body: 0, acks, BatchConfig(),
                                 sender_module.RetryConfig(), 4, "nowhere")
        items: list = []
        s.accepted.append(items.extend)
        s.start()
        s.write(list(EVENTS), docs)
        s.flush(5.0)  # Acks here were never handed the events: pending is not counted
        s.close()
        return items, acks

    items, acks = run([parse_event(e) for e in EVENTS], "docs")
    assert parsed == ["not json", "[1, 2"]  # only the events that are not JSON
    parsed.clear()
    alone, alone_acks = run(None, "texts")
    assert parsed == EVENTS
    assert len(items) == 2 and items == alone
    assert acks.reasons == alone_acks.reasons and acks.failed == 5
    assert (tmp_path / "docs.jsonl").read_text() == (tmp_path / "texts.jsonl").read_text()


def test_a_routed_otlp_output_maps_and_fails_as_an_unrouted_one(jaeger, write, tmp_path):
    """Two otlp outputs into Jaeger beside a routed one: the same deliveries, the same
    failures with the same dead letters, whether or not a `when` rule parsed the events."""
    write("s.py", f"""
        import json
        EVENTS = {EVENTS!r}
        def produce(p):
            return EVENTS
        """)
    endpoint = jaeger["otlp_grpc"]

    def run(rule: str, name: str) -> tuple[dict, list[dict]]:
        config = write(f"{name}.yaml", f"""
            mode: backfill
            input: [{{cron: {{expression: "* * * * * *", start: "2026-02-20T10:00:00Z",
                             end: "2026-02-20T10:00:01Z"}}}}]
            event: {{script: {{path: s.py}}}}
            output:
              - otlp: {{endpoint: '{endpoint}', dead_letter: {name}-all.jsonl}}
              - otlp: {{endpoint: '{endpoint}', dead_letter: {name}-a.jsonl{rule}}}
            """)
        result = run_cli("run", config)
        assert result.code == 1, result.stderr
        dead = {
            out: sorted(
                (d["error"], d["value"])
                for d in map(json.loads, (tmp_path / f"{name}-{out}.jsonl").read_text().splitlines())
            )
            for out in ("all", "a")
        }
        return {out: result.summary(out) for out in ("otlp-0", "otlp-1")}, dead

    routed, routed_dead = run(", when: {field: service, equals: a}", "routed")
    plain, plain_dead = run("", "plain")
    assert routed["otlp-0"] == plain["otlp-0"]
    assert routed_dead["all"] == plain_dead["all"]
    assert {k: v for k, v in routed["otlp-0"].items() if k in ("delivered", "failed")} == {
        "delivered": 2, "failed": 5}
    a = routed["otlp-1"]
    assert (a["delivered"], a["failed"], a["filtered"]) == (1, 2, 4)
    # the routed output's failures are the unrouted one's for the same events
    assert set(routed_dead["a"]) <= set(plain_dead["all"])
    assert sorted(value for _, value in routed_dead["a"]) == sorted([EVENTS[3], EVENTS[6]])
    spans = wait_for_trace(jaeger["query"], TRACE, min_spans=2)
    assert {s["spanID"] for s in spans} >= {"a1" * 8, "b1" * 8}
