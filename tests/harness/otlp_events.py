"""Events for the OTLP encoders' differential properties (tests/otlp/test_compiled.py,
test_native.py): each field of the common span and log-record shapes kept, dropped, made odd
or anything; texts made odder still; and what an encoder gave, as the outputs report it."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import strategies as st

from connector.otlp.mapping import LogMapping, MappingError, SpanMapping
from tests.harness.cli import EXAMPLES
from tests.harness.fuzz import json_values

TRACE, SPAN, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331"
T0 = "2026-02-20T10:00:00.123456+00:00"

SPAN_VALUES = {
    "trace_id": [TRACE, TRACE.upper(), "0" * 32, "4bf92f35", "g" * 32, " " + TRACE[1:], 5, "",
                 None, "ab cd" + TRACE[5:]],
    "span_id": [SPAN, "0" * 16, "z" * 16, "abc", 7, None, "00f067aa 0ba902b"],
    "parent_span_id": [PARENT, None, "", "0" * 16, "abc", 5, ["x"]],
    "service": ["checkout", "", None, 1, ["s"], "caf\u00e9", "\ud800"],
    "operation": ["GET /orders", "", None, 3, {"a": 1}, "\ud800x", "x" * 300],
    "start_time": [T0, "2026-02-20T10:00:00+00:00", "2026-02-20T12:00:00.5+02:00",
                   "2026-02-20T10:00:00", "2026-02-30T00:00:00+00:00", "1969-12-31T23:59:59.5+00:00",
                   "2554-07-21T23:34:33.709551+00:00", "2400-01-01T00:00:00.999999+00:00",
                   1.7e9, 1_771_581_600, 2**70, True, None, "", "yesterday"],
    "duration_ms": [61.23, 0, 5, -1, -0.4, 1e300, 1e17, 9.9e15, 2**70, 2**63, True, "5", None,
                    [1], 1e-9],
    "status": ["OK", "ERROR", "UNSET", "ok", "STATUS_CODE_ERROR", "bad", None, ["OK"], 1, ""],
}
SPAN_EXTRAS = {
    "error_message": ["boom", "", None, [], 5],
    "kind": ["SERVER", "bogus", None],
    "attributes": [{"k": 1}, None, [1], {}],
    "resource": [{"zone": "a"}, None, 5],
    "end_time": [T0, None],
    "links": [[], None, [{"trace_id": TRACE, "span_id": SPAN}]],
    "events": [[], None],
    "extra": [1, None, "x", 2**70],
}
LOG_VALUES = {
    "timestamp": [T0, "2026-02-20T10:00:00+00:00", "2026-02-20T10:00:00", "2026-02-30T00:00:00Z",
                  "1969-12-31T23:59:59Z", "1969-12-31T23:59:59.5+00:00", 1.5e9, 2**70, -1, True,
                  None, "", "2554-07-21T23:34:33.709551615+00:00", "9999-12-31T23:59:59+00:00"],
    "level": ["INFO", "warning", "", " Error ", "x" * 40, "\ud800", 0, 24, 25, 1.5, True, None,
              ["INFO"]],
    "message": ["Request processed", "", None, "\ud800", 5, 2**70, 1.5, [1, None], {"a": 1},
                True, "x" * 300],
    "service": ["svc", "", None, 1, ["s"], "é"],
}
LOG_EXTRAS = {
    "trace_id": [TRACE, "0" * 32, None, ""],
    "span_id": [SPAN, None, "z" * 16],
    "attributes": [{"k": 1}, None, [1]],
    "resource": [{"zone": "a"}, None, 5],
    "extra": [1, None, 2**70],
}
LOG_MAPPING = LogMapping(body="message", severity="level")


@st.composite
def docs(draw, plain: dict, extras: dict):
    """The common shape, each field kept, dropped, made odd or anything; sometimes more."""
    doc = {name: pool[0] for name, pool in plain.items()}
    for name, pool in plain.items():
        choice = draw(st.sampled_from(["keep", "keep", "odd", "any", "drop"]))
        if choice == "odd":
            doc[name] = draw(st.sampled_from(pool))
        elif choice == "any":
            doc[name] = draw(json_values)
        elif choice == "drop":
            del doc[name]
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from(sorted(extras)))
        doc[name] = draw(st.sampled_from(extras[name]) | json_values)
    return doc


@st.composite
def texts(draw, plain: dict, extras: dict):
    """An event as text: the doc's JSON, maybe made odder (a key twice, cut short)."""
    text = json.dumps(draw(docs(plain, extras)))
    how = draw(st.sampled_from(["as is", "as is", "twice", "cut", "pad", "not an object"]))
    if how == "twice":  # the last one counts
        name = draw(st.sampled_from(sorted(plain)))
        again = json.dumps({name: draw(st.sampled_from(plain[name]))})[1:]
        text = text[:-1] + ("," if len(text) > 2 else "") + again
    elif how == "cut":
        text = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    elif how == "pad":
        text = f" \n{text}\t"
    elif how == "not an object":
        text = json.dumps([json.loads(text)])
    return text


def outcome(encode, *args):
    """What an encoder gives: the item, or how it failed (as the outputs report it)."""
    try:
        return ("item", encode(*args))
    except MappingError as exc:
        return ("refused", exc.reason, exc.detail)
    except orjson.JSONDecodeError as exc:
        return ("not JSON", type(exc).__name__, str(exc))
    except Exception as exc:  # the outputs count these too, by type
        return ("unexpected", type(exc).__name__, str(exc))


SPAN_MAPPINGS = [SpanMapping(), SpanMapping(service="svc", operation="name", status="state")]


def renamed(doc: dict, m: SpanMapping) -> dict:
    names = {"service": m.service, "operation": m.operation, "status": m.status}
    return {names.get(k, k): v for k, v in doc.items()}


def renamed_text(text: str, m: SpanMapping) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    if not isinstance(doc, dict):
        return text
    return json.dumps(renamed(doc, m))


def example_events(script: str, ticks: int) -> list[str]:
    """The events an example's produce() gives for `ticks` timestamps a second apart
    (`script`: its path under examples/)."""
    spec = importlib.util.spec_from_file_location("example_" + script.replace("/", "_"),
                                                  EXAMPLES / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    start, events = datetime(2026, 1, 1, tzinfo=UTC), []
    for k in range(ticks):
        made = module.produce({"timestamp": start + timedelta(seconds=k), "tags": ()})
        events += [made] if isinstance(made, str) else made
    return events
