"""Prometheus text over real HTTP, read back: the one scraper (the connector's /metrics and
the Collector's own), plus status codes of the health endpoints."""

from __future__ import annotations

import urllib.error
import urllib.request

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never proxy 127.0.0.1

Samples = dict[tuple[str, tuple], float]


def _url(where: int | str, path: str = "/metrics") -> str:
    """A port on 127.0.0.1 or a whole URL."""
    return f"http://127.0.0.1:{where}{path}" if isinstance(where, int) else where


def samples(text: str) -> Samples:
    """{(sample name, sorted labels): value} from Prometheus text (served or rendered)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def scrape(where: int | str) -> Samples | None:
    """samples() from /metrics on a port (or a metrics URL); None when nothing answers."""
    try:
        with NO_PROXY.open(_url(where), timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    return samples(text)


def metric(samples: Samples | None, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry these labels (0 when there are none)."""
    return sum(
        v for (n, ls), v in (samples or {}).items()
        if n == name and all(dict(ls).get(k) == want for k, want in labels.items())
    )


def http_status(port: int, path: str) -> int:
    """The status code of GET path on the port; 0 when nothing answers."""
    try:
        with NO_PROXY.open(_url(port, path), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0
