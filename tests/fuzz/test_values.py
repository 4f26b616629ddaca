"""Values kept exactly: for any JSON document an output accepts, what a consumer reads back
is equal to it; a document it cannot keep fails alone, with a reason.

The documents are generated as text, token by token, so that the spellings that break
re-encoders come up: integers of any size, -0 and -0.0, 1e308 and 5e-324, exponent forms,
escaped lone surrogates, non-BMP characters (raw and as escape pairs), duplicate keys,
nesting around orjson's depth limit, whitespace of every kind; and, as the documents an
output must refuse, NaN and Infinity literals and a number past a double's range.

"Equal" is exact: integers by value (any size), floats as doubles with their sign (-0.0 is
not 0.0), strings with their lone surrogates, objects as their ordered pairs (a key given
twice is two pairs). Outputs: file and stdout (plain), the json formatter, `when`, and
Kafka raw against the real broker (values and keys).
"""

from __future__ import annotations

import json
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connector.outputs import file as file_output
from connector.outputs import stdout as stdout_output
from connector.outputs.base import Acks, Batch, When, parse_event
from connector.outputs.formatter import UNKEPT
from tests.harness.hypothesis_profiles import budget

# -- documents as text ----------------------------------------------------------------------

EDGE_NUMBERS = [
    "0", "-0", "-0.0", "0.0", "1e308", "-1e308", "5e-324", "-5e-324", "1E2", "1e+2", "1e-2",
    "1.7976931348623157e308", "2.2250738585072014e-308", "0.1", "1.0",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "18446744073709551616",
    "18446744073709551617", "123456789012345678901234567890123456789",
    "0.10000000000000000000000001", "1.5e-10",
]
numbers = st.one_of(
    st.sampled_from(EDGE_NUMBERS),
    st.integers().map(str),
    st.integers(min_value=-(2**200), max_value=2**200).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)

ESCAPES = ["\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u0000", "\\u00e9",
           "\\ud800", "\\udfff", "\\udc00x", "\\ud83d\\ude00", "\\uD83D\\uDE00", "\\u003a",
           "\\u2028", "\\ufeff"]
raw_char = st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\',
                         min_codepoint=0x20)
strings = st.lists(
    st.one_of(raw_char, st.sampled_from(ESCAPES), st.sampled_from(["\U0001f600", "\U0010ffff",
                                                                   "é", ":", " ", "e+1"])),
    max_size=8,
).map(lambda parts: '"' + "".join(parts) + '"')

space = st.sampled_from(["", "", "", " ", "  ", "\t", "\n", "\r\n"])
scalars = st.one_of(numbers, strings, st.sampled_from(["true", "false", "null"]))
KEYS = st.sampled_from(['"a"', '"b"', '"a.b"', '"\\ud800"', '"k\\u003a"', '"k:"', '""'])


def _object(pairs: list[tuple[str, str]], ws: str) -> str:
    return "{" + ws + ",".join(f"{k}{ws}:{ws}{v}" for k, v in pairs) + ws + "}"


def _array(items: list[str], ws: str) -> str:
    return "[" + ws + ("," + ws).join(items) + ws + "]"


values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.builds(_array, st.lists(inner, max_size=4), space),
        st.builds(_object, st.lists(st.tuples(st.one_of(KEYS, strings), inner), max_size=4),
                  space),
    ),
    max_leaves=10,
)
deep = st.builds(lambda d, v: "[" * d + v + "]" * d,
                 st.sampled_from([64, 500, 1000, 1023, 1024, 1025, 1500]), scalars)
# not JSON, or JSON no double keeps: an output must refuse these, never change them
refused = st.sampled_from(["NaN", "Infinity", "-Infinity", '{"a": NaN}', "[1e400]",
                           "-1e999", '{"a": 1,}', "01", ""])
documents = st.one_of(values, values, values, deep, refused).flatmap(
    lambda doc: st.builds(lambda a, b: a + doc + b, space, space))


# -- what a consumer reads: the exact model -------------------------------------------------

class _Int(int):
    pass


def _exact_decoder() -> json.JSONDecoder:
    def number(text: str) -> tuple:
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise ValueError("past a double")
        return ("float", value.hex())

    def constant(text: str):
        raise ValueError(f"{text} is not JSON")

    return json.JSONDecoder(object_pairs_hook=lambda pairs: ("object", pairs),
                            parse_float=number, parse_int=lambda t: ("int", int(t)),
                            parse_constant=constant)


EXACT = _exact_decoder()


@contextmanager
def deep_enough():
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def read(text: str):
    """The exact value of a JSON text; ValueError when it is not JSON, or not keepable."""
    with deep_enough():
        return EXACT.decode(text)


def as_map(value):
    """An exact value with objects read as maps: a key given twice, the last one counts."""
    if isinstance(value, list):
        return [as_map(v) for v in value]
    if isinstance(value, tuple) and value[0] == "object":
        return ("object", sorted((k, as_map(v)) for k, v in dict(value[1]).items()))
    return value


def is_json(text: str) -> bool:
    try:
        read(text)
    except ValueError:
        return False
    return True


# -- the line outputs -----------------------------------------------------------------------

LINE_REASONS = {"holds a line break", "not UTF-8 encodable"}


def through(tmp_path: Path, kind: str, fmt: str, docs: list[str]) -> tuple[list[str], Acks]:
    """Write `docs` through a real file or stdout output; (the lines written, its acks)."""
    path = tmp_path / f"{uuid.uuid4().hex}.txt"
    acks = Acks("out", kind)
    formatter = {"formatter": {"format": fmt}}
    if kind == "file":
        out = file_output.build(file_output.Config(path=path, **formatter), acks)
    else:
        stream = open(path, "w")  # noqa: SIM115 (closed below)
        out = stdout_output.StdoutOutput(stdout_output.Config(**formatter), acks, stream)
    out.start()
    out.write_batch(Batch(list(docs)))
    out.flush(1)
    out.close()
    if kind == "stdout":
        stream.close()
    data = path.read_bytes().decode()
    return data.split("\n")[:-1], acks


def check_line_output(tmp_path: Path, kind: str, fmt: str, docs: list[str]) -> None:
    """Plain: the text itself, or a line-break/UTF-8 refusal. json: a line reading back
    equal to the document, or a refusal that is true (`not JSON` only for what is not)."""
    lines, acks = through(tmp_path, kind, fmt, docs)
    assert acks.delivered + acks.failed == len(docs)
    assert len(lines) == acks.delivered
    allowed = LINE_REASONS | ({"not JSON", UNKEPT} if fmt == "json" else set())
    assert set(acks.reasons) <= allowed, acks.reasons
    pending, unkept = list(lines), 0
    for doc in docs:
        if fmt == "plain":
            if "\n" not in doc and "\r" not in doc and _utf8(doc):
                assert pending.pop(0) == doc  # plain writes the text itself
            continue
        if not is_json(doc):
            continue  # refused: counted below
        if pending and read(pending[0]) == read(doc):
            pending.pop(0)
            continue
        unkept += 1  # valid JSON not written: only as a value it cannot keep (depth)
    assert not pending, f"lines no document accounts for: {pending[:3]}"
    if fmt == "json":
        not_json = [d for d in docs if not is_json(d)]
        assert acks.reasons["not JSON"] <= len(not_json), ("valid JSON called not JSON", docs)
        assert acks.failed == len(not_json) + unkept
        assert acks.reasons[UNKEPT] >= unkept


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# Each defect the property found (or the issue named) is an explicit example.
BIG = "18446744073709551617"
DEFECTS = [
    [BIG],  # the json formatter wrote 1.8446744073709552e+19
    ['{"a": 1, "a": 2}'],  # the json formatter kept only the last pair
    ['["\\ud800"]'],  # an escaped lone surrogate is JSON, not "not JSON"
    ['{"n": -9223372036854775809, "m": 123456789012345678901234567890}'],
    ["[" * 1025 + "0" + "]" * 1025],  # past orjson's depth: read exactly, or refused
    ["NaN", "[1e400]", "-0", "-0.0", "1e308", "5e-324", '"\\ud83d\\ude00"'],
]


def defects(test):
    for docs in reversed(DEFECTS):
        test = example(docs=docs)(test)
    return test


@budget(150)
@given(docs=st.lists(documents, min_size=1, max_size=6))
@defects
@pytest.mark.parametrize(("kind", "fmt"), [("file", "plain"), ("stdout", "plain"),
                                           ("file", "json"), ("stdout", "json")])
def test_line_outputs_read_back_what_they_accept(tmp_path_factory, kind, fmt, docs):
    check_line_output(tmp_path_factory.mktemp("values"), kind, fmt, docs)


# -- values.loads, the reader every routed output uses ---------------------------------------

def _model(value):
    """A value read by values.loads, in the exact model's shape (as_map of read())."""
    if isinstance(value, list):
        return [_model(v) for v in value]
    if isinstance(value, dict):
        return ("object", sorted((k, _model(v)) for k, v in value.items()))
    if type(value) is int:
        return ("int", value)
    if type(value) is float:
        return ("float", value.hex())
    return value


@budget(300)
@given(doc=documents)
@example(doc=BIG)
@example(doc="-9223372036854775809")  # 19 digits, past 64 bits
@example(doc='{"a": "1234567890123456789", "b": 18446744073709551616}')
@example(doc="[" * 300 + "1" + "]" * 300)  # deeper than orjson writes
@example(doc='{"a": [1e17, 12345678901234567.0, -0.0]}')
def test_loads_reads_every_value_exactly(doc):
    """What values.loads returns is the document's exact value (a key given twice: the last
    one); what it refuses is not JSON, not keepable, or nested deeper than it reads."""
    with deep_enough():  # the model's own reading of 1,500 levels
        _check_loads(doc)


def _check_loads(doc: str) -> None:
    import orjson

    from connector import values as exact

    try:
        want = as_map(read(doc))
    except ValueError:
        want = None
    try:
        got = _model(exact.loads(doc))
    except exact.Unkept:
        assert want is None or doc.count("[") + doc.count("{") > 250, doc
        return
    except orjson.JSONDecodeError:
        assert want is None, doc
        return
    assert got == want, doc


# -- when -----------------------------------------------------------------------------------

def _neighbour(value):
    """A value a `when` rule must tell from `value`: equal would be a wrong match."""
    if type(value) is bool or value is None:
        return "x"
    if type(value) is int:
        return value + 1
    if type(value) is float:
        return float.fromhex(value.hex()) * 2 + 1 if value != 0 else 5e-324
    return value + "x"


def _python(token: str):
    """The Python value of a scalar token, exactly (None for null)."""
    with deep_enough():
        return json.loads(token)


@budget(200)
@given(key=KEYS, value=scalars, rest=st.lists(st.tuples(KEYS, values), max_size=3), ws=space)
@example(key='"n"', value=BIG, rest=[], ws="")
@example(key='"n"', value="18446744073709551616", rest=[], ws=" ")
@example(key='"s"', value='"\\ud83d\\ude00"', rest=[('"s"', '"\\ud800"')], ws="")
@example(key='"a"', value="-0.0", rest=[('"a"', "1")], ws="")
def test_when_compares_the_value_as_written(key, value, rest, ws):
    # the last pair with the key is the one that counts (as JavaScript and Python read it)
    event = _object([*rest, (key, value)], ws)
    field = json.loads(key)
    want = _python(value)
    if not field or not _utf8(field) or (type(want) is str and not _utf8(want)):
        return  # a config (UTF-8 YAML) cannot name such a field or value
    doc = parse_event(event)
    assert When(field=field, equals=want).matcher()(doc), (event, want)
    other = _neighbour(want)
    if type(other) is float and other == want:
        return
    assert not When(field=field, equals=other).matcher()(doc), (event, other)


# -- kafka, against the real broker ---------------------------------------------------------

def consume(bootstrap: str, topic: str, expect: int) -> list:
    """Every message of `topic` (assigned, not subscribed: no group is left behind)."""
    import time

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages, deadline = [], time.monotonic() + 30
    try:
        while len(messages) < expect and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(100, timeout=0.5) if m.error() is None]
        messages += [m for m in consumer.consume(100, timeout=1.0) if m.error() is None]
    finally:
        consumer.close()
    return messages


KAFKA_REASONS = {"cannot encode as UTF-8 (lone surrogate)", "event is not a JSON object",
                 "field 'k' is missing", "field 'k' is null",
                 "not JSON (needed for topic/key/header fields)"}


@budget(2)
@given(docs=st.lists(values.map(lambda v: '{"k": ' + v + ', "v": ' + v + "}") | values,
                     min_size=1, max_size=8))
@example(docs=['{"k": {"a":0,"a":1}, "v": {"a":0,"a":0}}', f'{{"k": {BIG}, "v": 1}}', '{"k": "\\ud800"}', '{"k": -0.0}',
               '{"k": "a", "k": 1e308}', '["\\ud83d\\ude00", 5e-324]',
               '{"k": "\\ud83d\\ude00", "v": [-0, 18446744073709551616]}'])
def test_kafka_raw_reads_back_what_it_accepts(kafka_bootstrap, kafka_topic, docs):
    # values as written (the event's own text), keys from a field: a string's characters,
    # anything else as exact JSON; a key that cannot be UTF-8 fails alone, named so
    from connector.outputs import kafka

    topic = kafka_topic("values", partitions=1)
    acks = Acks("k", "kafka")
    out = kafka.build(kafka.Config(bootstrap_servers=kafka_bootstrap, topic=topic, key="k"),
                      acks)
    out.start()
    out.write_batch(Batch(list(docs)))
    assert out.flush(30) == 0
    out.close()
    assert acks.delivered + acks.failed == len(docs)
    assert set(acks.reasons) <= KAFKA_REASONS, acks.reasons
    messages = consume(kafka_bootstrap, topic, acks.delivered)
    assert len(messages) == acks.delivered
    pending = [(m.value().decode(), m.key()) for m in messages]
    for doc in docs:
        if not pending or pending[0][0] != doc:
            continue  # failed (accounted above)
        _, key = pending.pop(0)
        _, pairs = read(doc)
        field = [v for k, v in pairs if k == "k"][-1]  # the last "k" is the key
        if isinstance(field, str):
            assert key == field.encode()
        else:  # a key re-encoded from the value a JSON reader reads: twice given, the last
            assert as_map(read(key.decode())) == as_map(field), (doc, key)
    assert not pending, "messages no document accounts for"
    lone = [d for d in docs if "\\ud800" in d or "\\udfff" in d or "\\udc00" in d]
    assert acks.reasons["not JSON (needed for topic/key/header fields)"] <= len(
        [d for d in docs if not is_json(d)]), "valid JSON (a lone surrogate?) called not JSON"
    assert acks.reasons["cannot encode as UTF-8 (lone surrogate)"] <= len(lone)


# -- otlp (the encoder itself: the readback through a receiver is the collector tests') -----

SPAN = ('{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331", '
        '"service": "s", "operation": "op", "start_time": "2026-02-20T10:00:00+00:00", '
        '"duration_ms": 1, %s}')


def test_otlp_attributes_keep_numbers_exactly_or_fail_alone():
    # an integer past 64 bits became a rounded double; it is now its digits (OTLP's int
    # is 64 bits); an escaped lone surrogate fails its span alone, named as such
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from connector.otlp.codec import otlp_encoder

    events = [SPAN % f'"big": {BIG}, "neg": -9223372036854775808, "z": -0.0, '
                     '"tiny": 5e-324, "huge": 1e308, "dup": 1, "dup": 2, "emoji": "\\ud83d\\ude00"',
              SPAN % '"bad": "\\ud800"']
    failed = []
    encode = otlp_encoder("otlp_proto")
    sent = [(payload, group) for _, payload, group in encode(
        events, lambda reason, event, detail=None, **where: failed.append((reason, event)))]
    assert failed == [("cannot map to a span: a string is not UTF-8 (lone surrogate)",
                       events[1])]
    assert len(sent) == 1 and sent[0][1] == [events[0]]
    span = ExportTraceServiceRequest.FromString(sent[0][0]).resource_spans[0] \
        .scope_spans[0].spans[0]
    got = {a.key: a.value for a in span.attributes}
    assert got["big"].string_value == BIG
    assert got["neg"].int_value == -(2**63)
    assert got["z"].double_value == 0 and str(got["z"].double_value) == "-0.0"
    assert got["tiny"].double_value == 5e-324 and got["huge"].double_value == 1e308
    assert got["dup"].int_value == 2  # a key given twice: the last, as JSON readers read it
    assert got["emoji"].string_value == "\U0001f600"
