"""JSON values read and written exactly.

orjson is the fast path everywhere an output reads an event's fields or rewrites an event.
On its own it would change some values in passing: it reads an integer past 64 bits as a
rounded float (18446744073709551617 -> 1.8446744073709552e+19), keeps only the last of a
key given twice, and refuses an escaped lone surrogate ("\\ud800", valid JSON). Here:

- `loads` reads integers of any size exactly and accepts escaped lone surrogates (as
  Python's json module does); NaN and Infinity are not JSON and numbers past a double's
  range cannot be kept, so both are refused, and so is a text holding a lone surrogate
  itself (not escaped: it has no UTF-8; orjson's error says so). A key given twice: the
  last one counts (as in JavaScript and Python). Errors are orjson.JSONDecodeError, with
  the reason.
- `dumps` writes a value as compact JSON, integers of any size included.
- `compact` is the `json` formatter: the event as one compact line whose every value is
  the event's own (numbers, duplicate keys and escapes as written when orjson would
  change them).

The common case costs one orjson.loads and one orjson.dumps; the standard library reads
again only the rare event that needs it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

__all__ = ["Unkept", "compact", "dumps", "loads"]


class Unkept(orjson.JSONDecodeError):
    """Valid JSON holding what cannot be kept exactly: a number past a double's range
    (1e400), an integer of more digits than Python converts (4300), nesting deeper than
    the reader goes."""


def _finite(token: str) -> float:
    value = float(token)
    if math.isinf(value):
        raise ValueError(f"the number {token[:40]} is past a double's range")
    return value


class _Literal(ValueError):
    """NaN, Infinity or -Infinity: JavaScript, not JSON."""


def _not_json(token: str) -> float:
    raise _Literal(f"{token} is not JSON (a JavaScript literal)")


_EXACT = json.JSONDecoder(parse_float=_finite, parse_constant=_not_json)
_STRING = re.compile(r'("(?:[^"\\]+|\\.)*")')  # a JSON string, escapes included
_SPACE = re.compile(r"[ \t\n\r]+")  # JSON's insignificant whitespace


def loads(text: str) -> Any:
    """The JSON value of `text`, every number as written (see the module's docstring)."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if not _utf8(text):  # a lone surrogate in the text itself: no reader gets it whole
            raise
        return _read(text, exc)
    try:
        rounded = b"e+" in orjson.dumps(doc)  # a float past 1e16: a rounded integer?
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: cannot tell
        rounded = True
    return _read(text, None) if rounded else doc


def dumps(value: Any) -> str:
    """Compact JSON of a value read by `loads` (integers past 64 bits included)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        # a lone surrogate (no UTF-8 for it) comes out escaped, as JSON allows
        return json.dumps(value, separators=(",", ":"), allow_nan=False)


def compact(text: str) -> str:
    """The event as compact JSON, every value as in `text`; orjson.JSONDecodeError (with
    the reason) when it is not JSON or holds what cannot be kept (NaN, 1e400)."""
    try:
        out = orjson.dumps(orjson.loads(text))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError) as exc:
        # valid all the same (an escaped lone surrogate, deep nesting)? else it raises
        _read(text, exc if isinstance(exc, orjson.JSONDecodeError) else None)
        return _minify(text)
    if b"e+" in out or out.count(b":") != _colons(text):
        _read(text, None)  # a rounded integer, a key given twice: keep them as written
        return _minify(text)
    return out.decode()


def _read(text: str, first: orjson.JSONDecodeError | None) -> Any:
    """The standard library's reading of what orjson refused or may have changed. When it
    refuses too: orjson's error for bad syntax (it says where), else what cannot be kept."""
    try:
        return _EXACT.decode(text)
    except RecursionError:
        raise Unkept("nested too deeply", text, 0) from None
    except json.JSONDecodeError as exc:
        raise (first or orjson.JSONDecodeError(exc.msg, text, exc.pos)) from None
    except _Literal as exc:
        raise orjson.JSONDecodeError(str(exc), text, 0) from None
    except ValueError as exc:  # 1e400, an integer of more digits than Python converts
        raise Unkept(str(exc), text, 0) from None


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _colons(text: str) -> int:
    """The colons orjson's compact output of `text` holds when it kept every pair: one per
    pair, plus those inside strings (an escaped colon becomes one)."""
    n = text.count(":")
    if "\\u003" in text:
        n += text.count("\\u003a") + text.count("\\u003A")
    return n


def _minify(text: str) -> str:
    """`text` without JSON's insignificant whitespace, every token as written."""
    parts = _STRING.split(text.strip(" \t\n\r"))
    parts[::2] = [_SPACE.sub("", part) for part in parts[::2]]
    return "".join(parts)
