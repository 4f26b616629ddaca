"""The README's pictures, made by running the connector (not by hand):

- docs/images/view.svg: the live view's last frame of a ramp (`run --view`);
- docs/images/report.png: that run's HTML report, as headless chromium draws it;
- docs/images/top.svg: `connector top` over three sharded replicas, one stopped.

Run it with `scripts/screenshots` (it sets up .venv first). It needs chromium.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.text import Text

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")

SCRIPT = """
import json, random
n = 0
def produce(params):
    global n
    n += 1
    kind = random.choice(["order", "refund"])
    event = {"n": n, "kind": kind, "at": params["timestamp"].isoformat()}
    # now and then an event of two lines: the file output refuses it (a failure to show)
    return json.dumps(event, indent=1) if n % 97 == 0 else json.dumps(event)
"""

RAMP = """
name: ramp
mode: live
input:
  - rate:
      stages:
        - {duration: 5s, target: 400}
        - {duration: 5s, target: 400}
        - {duration: 3s, target: 100}
event:
  script: {path: produce.py}
output:
  - file: {path: events.jsonl, dead_letter: dead.jsonl}
    name: file
  - null: {when: {field: kind, equals: order}}
    name: orders
"""

FLEET = """
name: fleet
mode: live
input:
  - rate: {per_second: 600, shard: true, start: "START"}
event:
  script: {path: produce.py}
output:
  - null: {}
    name: sink
"""


def connector(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "connector", *args], **kw)


def svg(text: str, path: Path, title: str, width: int) -> None:
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True)
    console.print(Text(text))
    console.save_svg(str(path), title=title)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_answers(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"screenshots: {url} did not answer")
            time.sleep(0.2)


def view_and_report(work: Path) -> None:
    (work / "ramp.yaml").write_text(RAMP)
    env = dict(os.environ, COLUMNS="112")
    run = connector("run", "ramp.yaml", "--view", "--seed", "1", "--report", "report.html",
                    "--metrics-port", "0", cwd=work, env=env, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE, text=True)
    _, err = run.communicate(timeout=120)
    frame = [line for line in err.splitlines() if not LOG_LINE.match(line)]
    svg("\n".join(frame), IMAGES / "view.svg", "connector run --view", 112)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("screenshots: chromium is missing (apt-get install chromium)")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--user-data-dir={work / 'profile'}", "--proxy-server=127.0.0.1:9",
                    "--virtual-time-budget=10000", "--window-size=1200,2300",
                    f"--screenshot={IMAGES / 'report.png'}", (work / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)


def top(work: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0).isoformat()
    (work / "fleet.yaml").write_text(FLEET.replace("START", start))
    ports = [free_port() for _ in range(3)]
    replicas = [
        connector("run", "fleet.yaml", "--metrics-port", str(port), "--quiet", cwd=work,
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                  env=dict(os.environ, CONNECTOR_REPLICAS="3", CONNECTOR_REPLICA_INDEX=str(i)))
        for i, port in enumerate(ports)
    ]
    try:
        for port in ports:  # every replica serves its metrics before top starts
            wait_answers(f"http://127.0.0.1:{port}/metrics")
        time.sleep(2)
        watch = connector("top", *(f"127.0.0.1:{p}" for p in ports), "--count", "12",
                          "--interval", "0.5", cwd=work, stdout=subprocess.PIPE, text=True,
                          env=dict(os.environ, COLUMNS="140"))
        time.sleep(5)  # top has started and read every replica a few times
        replicas[2].send_signal(signal.SIGTERM)  # one replica stops: shown down, kept
        out, _ = watch.communicate(timeout=60)
    finally:
        for r in replicas:
            r.send_signal(signal.SIGTERM)
            r.wait(30)
    svg(out.rstrip("\n"), IMAGES / "top.svg", "connector top", 140)


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "produce.py").write_text(SCRIPT)
        view_and_report(work)
        top(work)
    for name in ("view.svg", "report.png", "top.svg"):
        print(f"screenshots: {(IMAGES / name).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
