"""The benchmark suite: the connector against its ceilings, measured in one run.

    python bench/run.py                  # defaults: each connector run lasts >= 10 s
    python bench/run.py --size 20000 --rounds 1 --live-seconds 0   # a smoke run
    python bench/run.py --compare main~3   # every connector row beside the code at a git ref
    python bench/run.py --profile --size 200000   # the OTLP encoders' cost, stage by stage

For the basic and the tracing examples in backfill mode it measures, alternating
the measurements round by round (these machines are noisy):

  S      the example's produce() in a bare loop over the same timestamps
  K      a bare confluent-kafka loop producing the same payloads, a delivery
         callback per message, counting acknowledged messages
  P      1 / (1/S + 1/K): one process doing both and nothing else
  null   the connector with the null output
  kafka  the connector into the local Kafka (acknowledged events only), 1 and 2 workers;
         kafka --view: the same with the live view drawn all along; kafka canary: with
         the live canary reading 20 records back every second
  kafka tx  the same in transactions (commit_every 0.1 s; committed events only)
  kafka avro  the same, each event written as an Avro record (bench/basic.avsc, basic only)
              registered in the local Schema Registry
  kafka protobuf  the same as Protobuf records (bench/basic.proto, basic only)
  otlp   the connector into the local Jaeger over OTLP gRPC (tracing only)
  perf   kafka-producer-perf-test (same Kafka release, same broker, same record size)

and the OTLP rows, one signal per example (basic: logs, multi-service: metrics, tracing:
traces; see bench/otlp.py):

  E      a bare loop mapping + encoding the same events with our encoder and exporting them
         over OTLP/gRPC to the same receiver as the connector's otlp row
  C      1 / (1/S + 1/E): the ceiling of one process doing both
  otlp   the connector into that receiver (logs, metrics: a local Collector's otlp receiver
         feeding `nop`; traces: the local Jaeger); otlp histograms: the metrics with CPU
         and memory aggregated as histograms (explicit and exponential) before export;
         otlp canary: traces with the live canary asking Jaeger for 20 every second
  otlp collector, telemetrygen
         traces into the same Collector: the connector, and OpenTelemetry's telemetrygen
         (unthrottled, 8-span traces); spans the receiver accepted per second, and the loss

and, once, live mode at a fixed rate (achieved rate, schedule lag p99).
Every measurement runs in its own process; peak RSS is that process tree's.
Results print as a table and land in bench/results/<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import compare  # bench/compare.py: --compare REF, the old code beside this one
import otlp_profile  # bench/otlp_profile.py: --profile, the OTLP encoders stage by stage
import otlp_rows  # bench/otlp_rows.py: E, the bench's Collector, telemetrygen
import readback  # bench/readback.py: /metrics, topics and summaries read back

from connector.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {
    "basic": ROOT / "examples/basic/produce.py",
    "tracing": ROOT / "examples/tracing/tracing.py",
    "multi-service": ROOT / "examples/multi-service/metrics.py",
}
SIGNAL = {"basic": "logs", "multi-service": "metrics", "tracing": "traces"}
START = datetime(2026, 1, 1, tzinfo=UTC)
# Every topic this run creates starts with this (inherited by the measurement processes),
# so the run deletes exactly its own topics at the end; its files live in one temp folder.
TOPICS = os.environ.setdefault("BENCH_TOPIC_PREFIX", f"bench-{uuid.uuid4().hex[:8]}-")
WORK: Path = Path(tempfile.gettempdir())  # main() points it at the run's own temp folder


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


def services() -> tuple[str, str, str, str]:
    """Bootstrap, OTLP gRPC endpoint, registry URL and Jaeger query URL of the local Kafka,
    Jaeger and Schema Registry (started if needed; $KAFKA_BOOTSTRAP_SERVERS,
    $OTLP_ENDPOINT, $SCHEMA_REGISTRY_URL and $JAEGER_QUERY name running ones)."""
    kafka = (
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or sh(str(ROOT / "scripts/local-kafka"), "start")
        .stdout.strip()
        .splitlines()[-1]
        .split("=", 1)[1]
    )
    started = ""
    if not (os.environ.get("OTLP_ENDPOINT") and os.environ.get("JAEGER_QUERY")):
        started = sh(str(ROOT / "scripts/local-jaeger"), "start").stdout
    otlp = os.environ.get("OTLP_ENDPOINT") or re.search(
        r"^OTLP_ENDPOINT=(\S+)", started, re.M
    ).group(1)
    query = os.environ.get("JAEGER_QUERY") or re.search(
        r"^JAEGER_QUERY=(\S+)", started, re.M
    ).group(1)
    registry = os.environ.get("SCHEMA_REGISTRY_URL") or (
        sh(str(ROOT / "scripts/local-schema-registry"), "start")
        .stdout.strip()
        .splitlines()[-1]
        .split("=", 1)[1]
    )
    return kafka, otlp, registry, query


def measure(cmd: list[str], cwd: Path | None = None) -> tuple[str, float]:
    """Run one measurement process: (everything it printed, its peak RSS in MB).

    wait4 reports the child's own peak (with --workers, the largest of its processes)."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd
    )
    text = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{text[-3000:]}")
    return text, usage.ru_maxrss / 1024


def connector_rate(err: str) -> float:
    """Acknowledged events per second from the run summary (delivered over the run's time)."""
    s = readback.summary(err)
    return sum(delivered for delivered, _ in s["outputs"].values()) / s["seconds"]


def config(example: str, ticks: int, output: str, step: str = "1s") -> str:
    end = START + timedelta(seconds=ticks)
    path = Path(tempfile.mkdtemp(prefix="bench-", dir=WORK)) / "config.yaml"
    path.write_text(
        f"mode: backfill\n"
        f"input: [{{cron: {{expression: '* * * * * *', start: '{START.isoformat()}', "
        f"end: '{end.isoformat()}'}}}}]\n"
        f"event: {{script: {{path: {EXAMPLES[example]}}}}}\n"
        f"output: [{output}]\n"
    )
    return str(path)


def rate_config(example: str, events: int, ramp: bool, seconds: int = 100) -> str:
    """The same events from a `rate` input: constant n / T over T seconds, or through a load
    shape, a ramp 0 -> 2 n / T (the same integral n)."""
    path = Path(tempfile.mkdtemp(prefix="bench-", dir=WORK)) / "config.yaml"
    shape = (
        f"stages: [{{duration: {seconds}, target: {2 * events / seconds}}}]"
        if ramp
        else f"per_second: {events / seconds}, end: '{START + timedelta(seconds=seconds)}'"
    )
    path.write_text(
        f"mode: backfill\n"
        f"input: [{{rate: {{{shape}, start: '{START.isoformat()}'}}}}]\n"
        f"event: {{script: {{path: {EXAMPLES[example]}}}}}\n"
        f"output: [{{null: {{}}}}]\n"
    )
    return str(path)


# -- the bare loops, run as `python bench/run.py --inner script|client ...` -------------


def inner_script(example: str, ticks: int) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_script", EXAMPLES[example])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    produce, tags = module.produce, ()
    stamps = [START + timedelta(seconds=k) for k in range(ticks)]
    n, started = 0, time.perf_counter()
    for ts in stamps:
        result = produce({"timestamp": ts, "tags": tags})
        n += 1 if type(result) is str else len(result)
    print(f"RATE={n / (time.perf_counter() - started)}")


def inner_client(example: str, ticks: int, bootstrap: str) -> None:
    import importlib.util

    from confluent_kafka import Producer

    from connector.outputs.kafka import DEFAULTS

    spec = importlib.util.spec_from_file_location("bench_script", EXAMPLES[example])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    payloads = []
    for k in range(ticks):  # generated beforehand: only the client is timed
        r = module.produce({"timestamp": START + timedelta(seconds=k), "tags": ()})
        payloads += [r] if isinstance(r, str) else r
    producer = Producer({**DEFAULTS, "bootstrap.servers": bootstrap})
    topic, acked = f"{TOPICS}client-{uuid.uuid4().hex[:8]}", [0]

    def on_delivery(err, _msg) -> None:
        if err is None:
            acked[0] += 1

    producer.list_topics(timeout=30)
    started = time.perf_counter()
    for value in payloads:
        while True:
            try:
                producer.produce(topic, value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    print(f"RATE={acked[0] / (time.perf_counter() - started)}")


def perf_test(bootstrap: str, records: int, size: int) -> list[str]:
    lib = next(
        (Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "connector").glob(
            "kafka-*/lib"
        )
    )
    return [
        "java",
        "-Xmx512m",
        "-cp",
        f"{lib}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        f"{TOPICS}perf-{uuid.uuid4().hex[:8]}",
        "--num-records",
        str(records),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
        "acks=all",
        "enable.idempotence=true",
        "linger.ms=10",
        "compression.type=lz4",
    ]


# -- the suite ---------------------------------------------------------------------------


def otlp_output(ex: str, endpoint: str, mapping: dict | None = None, more: str = "") -> str:
    signal, mapping = SIGNAL[ex], mapping or otlp_rows.MAPPINGS[SIGNAL[ex]]
    extra = f", signal: {signal}, mapping: {json.dumps(mapping)}" if mapping else ""
    return f"{{otlp: {{endpoint: '{endpoint}'{extra}{more}}}}}"


# the live canary in a run of seconds: a sample every second, read back a second later
CANARY = "verify: {every: 1s, sample: 20, delay: 1s, timeout: 30s"


def run_suite(args: argparse.Namespace) -> dict:
    kafka, jaeger, registry, query = services()
    collector = otlp_rows.Collector(WORK)
    collector.start()
    try:
        return _run_suite(args, kafka, jaeger, registry, query, collector)
    finally:
        collector.stop()


def _run_suite(
    args: argparse.Namespace, kafka: str, jaeger: str, registry: str, query: str, collector
) -> dict:
    py, connector = (
        sys.executable,
        [sys.executable, "-m", "connector", "run", "--quiet", "--metrics-port", "0"],
    )
    # the live view drawn all along (into a pipe: --view), the summary after it
    viewed = [sys.executable, "-m", "connector", "run", "--view", "--metrics-port", "0"]
    # about the same events: basic one a tick, tracing 8, multi-service 4
    ticks = {"basic": args.size, "tracing": max(args.size // 8, 1),
             "multi-service": max(args.size // 4, 1)}
    # (example, name, command, a connector?, the Collector's counter of this signal to read)
    plan: list[tuple[str, str, list[str], bool, str | None]] = []
    for ex, n in ticks.items():
        signal = SIGNAL[ex]
        receiver = jaeger if signal == "traces" else collector.grpc
        signal_rows = [
            (ex, "E", [py, __file__, "--inner", "encode", ex, str(n), collector.grpc], False, None),
            (ex, "otlp", [*connector, config(ex, n, otlp_output(ex, receiver))], True,
             None if signal == "traces" else signal),
        ]
        if ex == "multi-service":
            aggregated = otlp_output(ex, receiver, otlp_rows.HISTOGRAM_MAPPING)
            plan += [(ex, "S", [py, __file__, "--inner", "script", ex, str(n)], False, None),
                     *signal_rows,
                     # no loss column: the receiver counts aggregated points, not events
                     (ex, "otlp histograms", [*connector, config(ex, n, aggregated)], True,
                      None)]
            continue
        plan += [
            (ex, "S", [py, __file__, "--inner", "script", ex, str(n)], False, None),
            (ex, "K", [py, __file__, "--inner", "client", ex, str(n), kafka], False, None),
            (ex, "null", [*connector, config(ex, n, "{null: {}}")], True, None),
            (ex, "null rate", [*connector, rate_config(ex, n, ramp=False)], True, None),
            (ex, "null ramp", [*connector, rate_config(ex, n, ramp=True)], True, None),
            (
                ex,
                "kafka",
                [
                    *connector,
                    config(
                        ex, n, f"{{kafka: {{bootstrap_servers: '{kafka}', topic: {TOPICS}{ex}}}}}"
                    ),
                ],
                True,
                None,
            ),
            (
                ex,
                "kafka canary",
                [
                    *connector,
                    config(
                        ex,
                        n,
                        f"{{kafka: {{bootstrap_servers: '{kafka}', topic: {TOPICS}{ex}-c, "
                        f"{CANARY}}}}}}}",
                    ),
                ],
                True,
                None,
            ),
            (
                ex,
                "kafka --view",
                [
                    *viewed,
                    config(
                        ex, n, f"{{kafka: {{bootstrap_servers: '{kafka}', topic: {TOPICS}{ex}}}}}"
                    ),
                ],
                True,
                None,
            ),
            (
                ex,
                "kafka --workers 2",
                [
                    *connector,
                    "--workers",
                    "2",
                    config(
                        ex, n, f"{{kafka: {{bootstrap_servers: '{kafka}', topic: {TOPICS}{ex}}}}}"
                    ),
                ],
                True,
                None,
            ),
            *signal_rows,
        ]
        # transactional ticks: a transaction every 0.1 s (a fresh id each run: no fencing)
        tx = f"transactions: {{id: '{TOPICS}tx-{uuid.uuid4().hex[:8]}', commit_every: 0.1}}"
        out = f"{{kafka: {{bootstrap_servers: '{kafka}', topic: {TOPICS}{ex}-tx, {tx}}}}}"
        plan.append((ex, "kafka tx", [*connector, config(ex, n, out)], True, None))
        if ex == "basic":
            avro = (
                f"{{kafka: {{bootstrap_servers: '{kafka}', topic: {TOPICS}{ex}-avro, "
                f"schema_registry: {{url: '{registry}'}}, "
                f"value_schema: {{format: avro, path: {ROOT / 'bench/basic.avsc'}}}}}}}"
            )
            plan.append((ex, "kafka avro", [*connector, config(ex, n, avro)], True, None))
            proto = avro.replace("-avro,", "-protobuf,").replace(
                f"format: avro, path: {ROOT / 'bench/basic.avsc'}",
                f"format: protobuf, path: {ROOT / 'bench/basic.proto'}")
            plan.append((ex, "kafka protobuf", [*connector, config(ex, n, proto)], True, None))
        if ex == "tracing":
            watched = otlp_output(ex, receiver, more=f", {CANARY}, query: '{query}'}}")
            plan.append((ex, "otlp canary", [*connector, config(ex, n, watched)], True, None))
        if ex == "tracing":  # the Kafka otlp encoding
            proto = (f"{{kafka: {{bootstrap_servers: '{kafka}', topic: {TOPICS}{ex}-otlp, "
                     "encoding: otlp_proto}}")
            plan.append((ex, "kafka otlp_proto", [*connector, config(ex, n, proto)], True, None))
        if ex == "tracing":  # beside a peer: the same Collector receiver for both
            into = config(ex, n, otlp_output(ex, collector.grpc))
            plan.append((ex, "otlp collector", [*connector, into], True, "traces"))
            plan.append((ex, "otlp collector --workers 2", [*connector, "--workers", "2", into],
                         True, "traces"))
            if args.telemetrygen:
                plan.append((ex, "telemetrygen", otlp_rows.telemetrygen(collector.grpc, n), False,
                             "traces"))
        size = 90 if ex == "basic" else 230  # the examples' typical event sizes in bytes
        plan.append(
            (ex, "perf", perf_test(kafka, n * (1 if ex == "basic" else 8), size), False, None)
        )
    if args.rows:  # a part of the suite: these measurements only (P needs S and K)
        plan = [step for step in plan if step[1] in args.rows.split(",")]
    if args.compare:
        plan = compare.twins(plan, args.compare_tree, args.compare)
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    losses: dict[tuple[str, str], list[float]] = {}

    def step(r: int, ex: str, name: str, cmd: list[str], from_summary: bool,
             counted: str | None, cwd: Path | None = None) -> float:
        before = collector.accepted(counted) if counted else 0.0
        started = time.perf_counter()
        text, rss = measure(cmd, cwd)
        elapsed = time.perf_counter() - started
        if name == "perf":
            rate = float(re.findall(r"([\d.]+) records/sec", text)[-1])
        elif from_summary:
            rate = connector_rate(text)
        elif name == "telemetrygen":  # what the receiver accepted, over the run's time
            rate = (wait_accepted(collector, counted, before) - before) / elapsed
        else:
            rate = float(re.search(r"RATE=([\d.]+)", text).group(1))
        if counted:  # items sent against items the receiver accepted
            sent = ticks[ex] * 8 if name == "telemetrygen" else produced(text, counted)
            losses.setdefault((ex, name), []).append(
                sent - (wait_accepted(collector, counted, before, sent) - before)
            )
        if r:
            samples.setdefault((ex, name), []).append((rate, rss))
        print(
            f"round {r or 'rerun'}: {ex:<13} {name:<26} {rate:>12,.0f}/s  rss {rss:,.0f} MB",
            file=sys.stderr,
            flush=True,
        )
        return rate

    for r in range(1, args.rounds + 1):  # alternate: every measurement once per round
        for row in compare.turns(plan, r) if args.compare else plan:
            step(r, *row)
    results = {}
    for (ex, name), values in samples.items():
        rates = [v for v, _ in values]
        results.setdefault(ex, {})[name] = {
            "median": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
            "peak_rss_mb": max(m for _, m in values),
        }
        if (ex, name) in losses:
            results[ex][name]["lost"] = max(losses[(ex, name)])  # the worst round
    for rows in results.values():
        if "S" in rows and "K" in rows:
            rows["P"] = {"median": 1 / (1 / rows["S"]["median"] + 1 / rows["K"]["median"])}
        if "S" in rows and "E" in rows:
            rows["C"] = {"median": 1 / (1 / rows["S"]["median"] + 1 / rows["E"]["median"])}
    rerun: dict[tuple[str, str], float] = {}
    if args.compare:  # a short row is run once more, beside its twin, before it is believed
        by_key = {(row[0], row[1]): row for row in plan}
        for ex, name in compare.short_rows(results, args.compare):
            new = step(0, *by_key[(ex, name)])
            rerun[(ex, name)] = new / step(0, *by_key[(ex, f"{name} @{args.compare}")])
    live = live_check(args.live_rate, args.live_seconds) if args.live_seconds else None
    ramp = live_ramp_check(args.live_rate, args.ramp_seconds) if args.ramp_seconds else None
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "size": args.size,
        "rounds": args.rounds,
        "results": results,
        "live": live,
        "live_ramp": ramp,
        "compare": None if not args.compare else {
            "ref": args.compare,
            "rerun": {f"{ex}/{name}": ratio for (ex, name), ratio in rerun.items()},
        },
    }


def produced(summary: str, signal: str) -> float:
    """Items a connector run sent: its events, three data points a multi-service event."""
    events = readback.summary(summary)["produced"]
    return events * (3 if signal == "metrics" else 1)


def wait_accepted(collector, signal: str, before: float, want: float | None = None) -> float:
    """The Collector's accepted count once it stops moving (or reaches `want`): an
    export the receiver is still processing is not lost."""
    last, still = collector.accepted(signal), 0
    while still < 3 and (want is None or last - before < want):
        time.sleep(0.2)
        now = collector.accepted(signal)
        still = still + 1 if now == last else 0
        last = now
    return last


def live_run(inputs: str, script: Path, args: list[str], env: dict | None = None) -> dict:
    """One live run with the null output: its /metrics at the end, and its summary."""
    import requests

    port = free_port()
    path = Path(tempfile.mkdtemp(prefix="bench-live-", dir=WORK)) / "config.yaml"
    path.write_text(
        f"input: [{inputs}]\nevent: {{script: {{path: {script}}}}}\noutput: [{{null: {{}}}}]\n"
    )
    cmd = [sys.executable, "-m", "connector", "run", str(path), "--quiet", *args]
    proc = subprocess.Popen(
        [*cmd, "--metrics-port", str(port), "--linger", "3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    while proc.poll() is None:  # /healthz turns 503 when the run ends; it lingers for a scrape
        time.sleep(0.2)
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base}/healthz", timeout=10).status_code == 503:
                break
    samples = readback.scrape(port)
    _, err = proc.communicate(timeout=60)
    buckets = readback.buckets(samples, "connector_schedule_lag_seconds")
    count = readback.metric(samples, "connector_schedule_lag_seconds_count")
    return {
        "lag_p99": next(le for le, n in sorted(buckets.items()) if n >= 0.99 * count),
        "produced": readback.summary(err)["produced"],
    }


def live_check(rate: int, seconds: int) -> dict:
    """Live mode at a fixed rate: achieved rate and schedule lag p99 from /metrics."""
    inputs = f"{{rate: {{per_second: {rate}}}}}"
    run = live_run(inputs, EXAMPLES["basic"], ["--duration", str(seconds)])
    return {
        "target_per_second": rate,
        "seconds": seconds,
        "achieved_per_second": run["produced"] / seconds,
        "lag_p99_seconds_at_most": run["lag_p99"],
    }


def live_ramp_check(target: int, seconds: int) -> dict:
    """Live mode through a ramp 0 -> target over `seconds`: produce() calls per wall-clock
    second (recorded by bench/probe.py) against the shape's integral for that second."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    calls = WORK / "ramp-calls.json"
    run = live_run(
        f"{{rate: {{stages: [{{duration: {seconds}, target: {target}}}], "
        f"start: '{start.isoformat()}'}}}}",
        Path(__file__).with_name("probe.py"),
        [],
        env={"BENCH_PROBE_OUT": str(calls)},
    )
    per_second = [0] * seconds
    for wall in json.loads(calls.read_text()):
        second = int(wall - start.timestamp())
        if 0 <= second < seconds:
            per_second[second] += 1
    slope, worst = target / seconds, 0.0
    for second, achieved in enumerate(per_second):
        expected = slope * ((second + 1) ** 2 - second**2) / 2
        if slope * second > 100:  # seconds scheduled above 100/s
            worst = max(worst, abs(achieved - expected) / expected)
    return {
        "target_per_second": target,
        "seconds": seconds,
        "worst_second_error": worst,
        "lag_p99_seconds_at_most": run["lag_p99"],
    }


def delete_topics(bootstrap: str) -> None:
    """Leave the broker as it was: drop every topic this run created."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    mine = [t for t in admin.list_topics(timeout=30).topics if t.startswith(TOPICS)]
    for future in admin.delete_topics(mine, operation_timeout=30).values() if mine else ():
        future.result(timeout=60)


def delete_subjects(registry: str) -> None:
    """And every subject its topics registered."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    client = SchemaRegistryClient({"url": registry})
    for subject in client.get_subjects():
        if subject.startswith(TOPICS):
            client.delete_subject(subject)
            client.delete_subject(subject, permanent=True)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table(report: dict) -> str:
    lines = [f"{report['machine']}; {report['rounds']} round(s); median (min-max)", ""]
    lines.append(
        f"| {'example':<13} | {'measurement':<26} | {'events/s':>26} | {'/ S':>5} | "
        f"{'/ P':>5} | {'/ C':>5} | {'lost':>5} | {'peak RSS':>8} |"
    )
    lines.append(
        f"|{'-' * 15}|{'-' * 28}|{'-' * 28}|{'-' * 7}|{'-' * 7}|{'-' * 7}|{'-' * 7}|{'-' * 10}|"
    )
    nan = {"median": float("nan")}
    for ex, rows in report["results"].items():
        s, p, c = (rows.get(k, nan)["median"] for k in ("S", "P", "C"))
        for name, row in rows.items():
            spread = f" ({row['min']:,.0f}-{row['max']:,.0f})" if "min" in row else ""
            rss = f"{row['peak_rss_mb']:,.0f} MB" if "peak_rss_mb" in row else ""
            lost = f"{row['lost']:,.0f}" if "lost" in row else ""
            lines.append(
                f"| {ex:<13} | {name:<26} | {row['median']:>10,.0f}{spread:>16} | "
                f"{row['median'] / s:>5.2f} | {row['median'] / p:>5.2f} | "
                f"{row['median'] / c:>5.2f} | {lost:>5} | {rss:>8} |"
            )
    if report.get("live"):
        live = report["live"]
        lines.append(
            f"\nlive: target {live['target_per_second']:,}/s for {live['seconds']} s, "
            f"achieved {live['achieved_per_second']:,.1f}/s, schedule lag p99 <= "
            f"{live['lag_p99_seconds_at_most'] * 1000:g} ms"
        )
    if report.get("live_ramp"):
        ramp = report["live_ramp"]
        lines.append(
            f"live ramp: 0 -> {ramp['target_per_second']:,}/s over {ramp['seconds']} s, "
            f"worst second {ramp['worst_second_error']:.2%} off its target (seconds above "
            f"100/s), schedule lag p99 <= {ramp['lag_p99_seconds_at_most'] * 1000:g} ms"
        )
    if report.get("compare"):
        ref = report["compare"]["ref"]
        rerun = {
            tuple(key.split("/", 1)): ratio for key, ratio in report["compare"]["rerun"].items()
        }
        lines.append(compare.table(report["results"], ref, rerun))
    return "\n".join(lines)


def profile(args: argparse.Namespace) -> None:
    """--profile: each signal's stages, in this process, against one Collector receiver."""
    global WORK
    calls = {"basic": args.size, "tracing": max(args.size // 8, 1),
             "multi-service": max(args.size // 4, 1)}
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        WORK = Path(work)
        collector = None
        endpoint = args.profile_endpoint
        if endpoint is None:
            collector = otlp_rows.Collector(WORK)
            collector.start()
            endpoint = collector.grpc
        try:
            results = {
                f"{SIGNAL[ex]} ({ex})": otlp_profile.profile_signal(
                    SIGNAL[ex], EXAMPLES[ex], n, endpoint, args.rounds, START
                )
                for ex, n in calls.items()
            }
        finally:
            if collector is not None:
                collector.stop()
    print(f"{machine()}; --size {args.size}, {args.rounds} round(s) per stage")
    print(otlp_profile.table(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size",
        type=int,
        default=4_000_000,
        help="basic: timestamps (= events); tracing: size/8 traces (= size spans)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--live-rate", type=int, default=10_000)
    parser.add_argument("--live-seconds", type=int, default=60, help="0 skips the live check")
    parser.add_argument(
        "--ramp-seconds", type=int, default=30, help="live ramp 0 -> --live-rate; 0 skips it"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--rows", help="only these measurements, comma-separated (S is always needed)"
    )
    parser.add_argument(
        "--no-telemetrygen",
        dest="telemetrygen",
        action="store_false",
        help="skip the telemetrygen row (it is built once with Go; the test suite skips it)",
    )
    parser.add_argument(
        "--compare",
        metavar="REF",
        help="also run every connector row on the code at git REF, alternating, and compare",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only the OTLP encoders: µs per event of each stage, per signal",
    )
    parser.add_argument(
        "--profile-endpoint",
        help="--profile: export to this OTLP/gRPC endpoint (default: the bench's own Collector)",
    )
    parser.add_argument("--inner", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        kind, example, ticks, *rest = args.inner
        if kind == "encode":
            otlp_rows.inner_encode(SIGNAL[example], EXAMPLES[example], int(ticks), *rest, START)
            return
        (inner_script if kind == "script" else inner_client)(example, int(ticks), *rest)
        return
    global WORK
    if args.profile:
        profile(args)
        return
    kafka = None
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        WORK = Path(work)
        try:
            if args.compare:
                args.compare_tree = compare.build(ROOT, args.compare, WORK)
            kafka, _, registry, _ = services()
            report = run_suite(args)
        finally:
            if kafka:
                delete_topics(kafka)
                delete_subjects(registry)
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.out / f"{report['when'].replace(':', '')}.json"
    name.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"\nwritten to {name}")


if __name__ == "__main__":
    main()
