"""Trace store read-back: each recorded trace is asked for by id, and its span ids
compared with the recorded ones: complete, incomplete (the missing span ids listed in
--json) or missing.

Jaeger (default): `/api/v3/traces/{id}` (OTLP JSON), falling back to the v1
`/api/traces/{id}` when v3 does not have it. Tempo (`--backend tempo`): `/api/traces/{id}`,
OTLP JSON under "batches" (or "resourceSpans"), span ids in base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime

from connector.manifest.hashing import sampled
from connector.manifest.reader import OutputRecord
from connector.verify.kafka import VerifyError
from connector.verify.report import Progress, Tally

__all__ = ["TraceQuery", "span_ids", "verify_traces"]

TIMEOUT = 10.0


class TraceQuery:
    """GET a trace by id from a query API; None when it does not have it."""

    def __init__(
        self,
        base: str,
        backend: str = "jaeger",
        since: datetime | None = None,
        until: datetime | None = None,
        opener=urllib.request.urlopen,
    ):
        self.base, self.backend, self.opener = base.rstrip("/"), backend, opener
        self.since, self.until = since, until
        # the API that answered with a trace (v3 or the v1 fallback): from then on a trace
        # it does not know is not asked of the other one
        self.answered: int | None = None

    def paths(self, hex_id: str) -> list[str]:
        if self.backend == "tempo":
            window = {}
            if self.since:
                window["start"] = int(self.since.timestamp())
            if self.until:
                window["end"] = int(self.until.timestamp())
            query = f"?{urllib.parse.urlencode(window)}" if window else ""
            return [f"/api/traces/{hex_id}{query}"]
        v3, v1 = {}, {}
        if self.since:
            v3["start_time"] = self.since.isoformat()
            v1["start"] = int(self.since.timestamp() * 1_000_000)
        if self.until:
            v3["end_time"] = self.until.isoformat()
            v1["end"] = int(self.until.timestamp() * 1_000_000)
        q3 = f"?{urllib.parse.urlencode(v3)}" if v3 else ""
        q1 = f"?{urllib.parse.urlencode(v1)}" if v1 else ""
        return [f"/api/v3/traces/{hex_id}{q3}", f"/api/traces/{hex_id}{q1}"]

    def get(self, trace_id: bytes) -> set[bytes] | None:
        """The span ids the store holds for the trace (None: it does not know it)."""
        paths = self.paths(trace_id.hex())
        for i, path in enumerate(paths):
            if self.answered is not None and i != self.answered:
                continue
            body = self._fetch(self.base + path)
            if body is None:
                continue
            try:
                doc = json.loads(body)
            except ValueError:
                raise VerifyError(f"{self.base}{path}: the answer is not JSON") from None
            spans = set(span_ids(doc))
            if spans:
                self.answered = i
                return spans
        return None

    def _fetch(self, url: str) -> bytes | None:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with self.opener(request, timeout=TIMEOUT) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise VerifyError(f"trace query {url} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise VerifyError(
                f"cannot reach the trace query API at {self.base}: {reason}"
            ) from None


def span_ids(doc) -> Iterator[bytes]:
    """Every span id in a query answer, whatever its shape: OTLP JSON ("spanId", hex or
    base64; Jaeger v3 under "result", Tempo under "batches") or Jaeger v1 ("spanID")."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("spanId", "spanID", "span_id") and isinstance(value, str):
                    span = _span_id(value)
                    if span is not None:
                        yield span
                elif key in ("references", "links", "parentSpanId", "parentSpanID"):
                    continue  # ids of other spans
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def _span_id(text: str) -> bytes | None:
    if len(text) == 16:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 8 else None


def verify_traces(
    record: OutputRecord, query: TraceQuery, sample: int, progress: Progress
) -> Tally:
    tally = Tally(record.name, record.plugin, "traces", query.base)
    traces = [(t, s) for t, s in record.traces.items() if sampled(t, sample)]
    for n, (trace_id, spans) in enumerate(traces, 1):
        tally.expected += 1
        found = query.get(trace_id)
        if found is None:
            tally.add("missing", "the trace store does not have it", trace_id=trace_id.hex())
        elif spans <= found:
            tally.found += 1
        else:
            lost = sorted(s.hex() for s in spans - found)
            tally.add(
                "incomplete",
                "spans missing from the trace",
                trace_id=trace_id.hex(),
                missing_spans=lost,
            )
        progress.update(f"traces {record.name}", n, len(traces))
    return tally
