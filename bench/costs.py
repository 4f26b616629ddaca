"""What a feature costs a row: the same run without and with it, alternating, each in a fresh
process, by rate (from the run's summary) and by CPU an event (user and system time of the
process and its threads, from wait4: the steadier figure on a shared machine).

    python bench/costs.py                         # kafka: --manifest, canary, --view
    python bench/costs.py --size 1000000 --rounds 7
    python bench/costs.py --row otlp              # traces into Jaeger: the trace canary
    python bench/costs.py --threads               # the view's and canaries' own threads

Uses the local Kafka and Jaeger ($KAFKA_BOOTSTRAP_SERVERS, $OTLP_ENDPOINT, $JAEGER_QUERY).

On a machine whose speed drifts by more than the costs measured (a shared VM: ±15 % from
run to run), `--threads` measures what the view and the canaries take in their own
threads instead: the CPU time of the sampler's thread (it samples and draws the view, on
a terminal: stderr is a pseudo-terminal there) and of the canary's, per second of the
run. Under the GIL, that is the share of a second the pipeline's thread cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 2, 20, 10, tzinfo=UTC)
# a sample every second, read back a second later: the canary at work all through a short run
CANARY = {"every": "1s", "sample": 20, "delay": "1s", "timeout": "30s"}
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:19092"
TOPICS: list[str] = []  # deleted at the end


def config(folder: Path, script: str, ticks: int, output: dict) -> Path:
    end = START + timedelta(seconds=ticks)
    path = folder / f"{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(
        "mode: backfill\nmetrics: {port: 0}\n"
        f"input: [{{cron: {{expression: '* * * * * *', start: '{START.isoformat()}', "
        f"end: '{end.isoformat()}'}}}}]\n"
        f"event: {{script: {{path: '{ROOT / 'examples' / script}'}}}}\n"
        f"output: [{json.dumps(output)}]\n"
    )
    return path


def run(path: Path, *args: str) -> tuple[float, float]:
    """(acknowledged events per second, CPU microseconds an event) of one `connector run`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector", "run", str(path), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(err[-3000:])
    seconds = float(re.search(r"^summary: .* after ([\d.]+)s", err, re.M).group(1))
    delivered = int(re.search(r"delivered (\d+), failed", err).group(1))
    return delivered / seconds, (usage.ru_utime + usage.ru_stime) / delivered * 1e6


def variants(row: str, folder: Path, size: int) -> dict[str, tuple[Path, list[str], str]]:
    """name -> (config, extra arguments, the variant it is compared with)."""
    if row == "otlp":  # the tracing example (8 spans a tick) into Jaeger over OTLP gRPC
        otlp = {"endpoint": os.environ.get("OTLP_ENDPOINT") or "127.0.0.1:4317"}
        query = os.environ.get("JAEGER_QUERY") or "http://127.0.0.1:16686"
        ticks, script = max(size // 8, 1), "tracing/tracing.py"
        watched = {**otlp, "verify": {**CANARY, "query": query}}
        return {
            "otlp": (config(folder, script, ticks, {"otlp": otlp}), ["--quiet"], "otlp"),
            "otlp canary": (
                config(folder, script, ticks, {"otlp": watched}), ["--quiet"], "otlp"
            ),
        }

    def kafka(**more: object) -> Path:
        topic = f"bench-costs-{uuid.uuid4().hex[:8]}"
        TOPICS.append(topic)
        out = {"kafka": {"bootstrap_servers": BOOTSTRAP, "topic": topic, **more}}
        return config(folder, "basic/produce.py", size, out)

    manifest = ["--quiet", "--manifest", str(folder / "m.manifest")]
    return {
        "kafka": (kafka(), ["--quiet"], "kafka"),
        "kafka --manifest": (kafka(), manifest, "kafka"),
        "kafka canary": (kafka(verify=CANARY), ["--quiet"], "kafka"),
        # the view beside the same command without it (not --quiet: it has no view)
        "kafka --no-view": (kafka(), ["--no-view"], "kafka --no-view"),
        "kafka --view": (kafka(), ["--view"], "kafka --no-view"),
    }


def inner(argv: list[str]) -> None:
    """`connector run ARGV` in this process, the view's and the canaries' threads timed."""
    import time

    sys.path.insert(0, str(ROOT))
    from connector.canary.loop import CanaryLoop
    from connector.cli import main as connector
    from connector.view.sampler import Sampler

    used: dict[str, float] = {}

    def timed(name: str, loop):
        def run(self) -> None:
            start = time.thread_time()
            try:
                loop(self)
            finally:
                used[name] = used.get(name, 0.0) + time.thread_time() - start

        return run

    Sampler._loop = timed("view", Sampler._loop)
    CanaryLoop._loop = timed("canary", CanaryLoop._loop)
    began = time.monotonic()
    code = connector(["run", *argv])
    print("THREADS " + json.dumps({"code": code, "wall": time.monotonic() - began, **used}))
    sys.stdout.flush()
    os._exit(code)


def threads(args: argparse.Namespace) -> None:
    """Each variant once per round, in a process of its own on a pseudo-terminal."""
    import pty
    import threading

    folder = Path(tempfile.mkdtemp(prefix="bench-costs-"))
    plans = {**variants("kafka", folder, args.size), **variants("otlp", folder, args.size)}
    chosen = {"kafka --view": "view", "kafka canary": "canary", "otlp canary": "canary"}
    shares: dict[str, list[float]] = {name: [] for name in chosen}
    for r in range(1, args.rounds + 1):
        for name, part in chosen.items():
            path, extra, _ = plans[name]
            main_fd, term = pty.openpty()
            drain = threading.Thread(target=_drain, args=(main_fd,), daemon=True)
            drain.start()
            out = subprocess.run(
                [sys.executable, __file__, "--inner", str(path), *extra],
                stdout=subprocess.PIPE, stderr=term, text=True, cwd=ROOT, check=False,
            ).stdout
            os.close(term)
            got = json.loads(re.search(r"^THREADS (.*)$", out, re.M).group(1))
            if got["code"]:
                raise RuntimeError(f"{name}: exit {got['code']}")
            shares[name].append(got.get(part, 0.0) / got["wall"])
            print(f"round {r}: {name:<14} {part} thread {1000 * shares[name][-1]:.1f} ms a "
                  f"second of the run ({got['wall']:.1f} s)", file=sys.stderr, flush=True)
    print(f"\n{args.size:,} events a run, {args.rounds} rounds, medians (min-max):\n")
    print("| row | thread | its CPU a second of the run |")
    print("|---|---|---|")
    for name, part in chosen.items():
        values = [1000 * v for v in shares[name]]
        print(f"| {name} | {part} | {statistics.median(values):.1f} ms "
              f"({min(values):.1f}-{max(values):.1f}) |")
    _delete_topics()


def _delete_topics() -> None:
    if TOPICS:
        from confluent_kafka.admin import AdminClient

        AdminClient({"bootstrap.servers": BOOTSTRAP}).delete_topics(TOPICS)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


def main() -> None:
    if sys.argv[1:2] == ["--inner"]:
        inner(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--row", choices=["kafka", "otlp"], default="kafka")
    parser.add_argument("--size", type=int, default=500_000, help="events a run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", action="store_true", help="the threads' own CPU instead")
    args = parser.parse_args()
    if args.threads:
        threads(args)
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-costs-"))
    plan = variants(args.row, folder, args.size)
    rates: dict[str, list[float]] = {name: [] for name in plan}
    cpus: dict[str, list[float]] = {name: [] for name in plan}
    for r in range(1, args.rounds + 1):
        for name, (path, extra, _) in plan.items():
            rate, cpu = run(path, *extra)
            rates[name].append(rate)
            cpus[name].append(cpu)
            print(f"round {r}: {name:<18} {rate:>10,.0f}/s  {cpu:.2f} us CPU an event",
                  file=sys.stderr, flush=True)
    print(f"\n{args.size:,} events a run, {args.rounds} alternating rounds, medians (min-max);")
    print("beside: the median of each round's ratio to the variant it is compared with\n")
    print("| row | events/s | beside | rate | CPU an event | CPU |")
    print("|---|---|---|---|---|---|")
    for name, (_, _, base) in plan.items():
        rate, cpu = statistics.median(rates[name]), statistics.median(cpus[name])
        paired = [a / b for a, b in zip(rates[name], rates[base], strict=True)]
        paired_cpu = [a / b for a, b in zip(cpus[name], cpus[base], strict=True)]
        print(
            f"| {name} | {rate:,.0f} ({min(rates[name]):,.0f}-{max(rates[name]):,.0f}) | "
            f"{base} | {100 * (statistics.median(paired) - 1):+.1f} % | {cpu:.2f} µs | "
            f"{100 * (statistics.median(paired_cpu) - 1):+.1f} % |"
        )
    _delete_topics()


if __name__ == "__main__":
    main()
