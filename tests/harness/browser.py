"""A report opened in a real browser: Debian's chromium, headless, with the network off.
The DOM it renders is read back (each chart's drawn traces and points, the totals), its
console is collected, and a screenshot is kept as a test artifact."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.harness.cli import ROOT

# every request leaves through a proxy that does not exist, and no name resolves
OFFLINE = ["--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
           "--disable-background-networking", "--no-first-run", "--disable-sync"]


def artifacts() -> Path:
    """Where tests keep what a human may want to look at (TEST_ARTIFACTS, else .local/)."""
    folder = Path(os.environ.get("TEST_ARTIFACTS") or ROOT / ".local" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is missing: scripts/test installs Debian's chromium when run as "
                    "root (or `apt-get install chromium`)")
    return found


@dataclass
class Drawn:
    traces: int = 0  # plotly's <g class="trace ..."> groups
    marks: int = 0  # <path> with a shape in it: a line, a marker, a bar


@dataclass
class Page:
    dom: str
    console: list[str]  # every console message and uncaught error
    charts: dict[str, Drawn] = field(default_factory=dict)  # chart div id -> what it drew
    totals: dict[str, int] = field(default_factory=dict)  # data-total -> number


class _Reader(HTMLParser):
    def __init__(self, page: Page):
        super().__init__()
        self.page, self.chart, self.depth, self.total = page, None, 0, None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "div":
            if self.chart is not None:
                self.depth += 1
            elif (a.get("id") or "").startswith("chart-"):
                self.chart, self.depth = a["id"], 1
                self.page.charts[self.chart] = Drawn()
        if self.chart is not None:
            drawn = self.page.charts[self.chart]
            classes = (a.get("class") or "").split()
            drawn.traces += tag == "g" and "trace" in classes
            drawn.marks += tag == "path" and len(a.get("d") or "") > 8
        if tag == "td" and "data-total" in a:
            self.total = a["data-total"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self.chart is not None:
            self.depth -= 1
            if self.depth == 0:
                self.chart = None
        if tag == "td":
            self.total = None

    def handle_data(self, data: str) -> None:
        if self.total is not None and data.strip():
            self.page.totals[self.total] = int(data.strip())


def open_offline(page: Path, screenshot: Path, profile: Path) -> Page:
    """The page as chromium renders it (scripts run, virtual time given to draw)."""
    common = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
              f"--user-data-dir={profile}", *OFFLINE, "--virtual-time-budget=10000",
              "--enable-logging=stderr", "--v=0"]
    url = page.resolve().as_uri()
    dump = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True,
                          timeout=120)
    assert dump.returncode == 0, dump.stderr[-3000:]
    shot = subprocess.run([*common, "--window-size=1280,4200", f"--screenshot={screenshot}",
                           url], capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-3000:]
    console = [line for line in (dump.stderr + shot.stderr).splitlines() if ":CONSOLE" in line]
    result = Page(dump.stdout, console)
    _Reader(result).feed(dump.stdout)
    return result
