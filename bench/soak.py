"""Soak: a long live run at a fixed rate into the real broker, watched from outside.

    python bench/soak.py --seconds 600                 # the README's run: 10 minutes at 5,000/s
    python bench/soak.py --seconds 90 --baseline 30 --require accounts,rss   # what CI runs

Every --every seconds it samples the connector process: its RSS (from /proc) and, scraped
from its /metrics, the timestamps emitted (achieved rate) and the schedule lag histogram
(lag p99 of the window). At the end it reads the topic back. It passes when:

  rss       RSS grows by less than 10% after the baseline (the first minute by default)
  lag       the run's schedule lag p99 is under 10 ms (in the histogram's 10 ms bucket)
  rate      the achieved rate over the sampled span is within 1% of the target
  accounts  records in the topic == delivered == produced, each event once, none failed

--require names the checks that decide the exit code (all by default); every check is
reported either way. It uses $KAFKA_BOOTSTRAP_SERVERS, else scripts/local-kafka (started if
needed), makes its own topic and temp folder and removes both at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import readback  # bench/readback.py

from connector.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ("rss", "lag", "rate", "accounts")

# An event like the basic example's log line (~170 bytes), with `n`, the call number, so
# the topic can be checked for each event exactly once.
SCRIPT = """\
import json, random
LEVELS = ["INFO"] * 7 + ["WARN"] * 2 + ["ERROR"]
n = 0

def produce(params):
    global n
    n += 1
    return json.dumps({
        "n": n, "timestamp": params["timestamp"].isoformat(), "level": random.choice(LEVELS),
        "service": "soak", "message": "request handled", "duration_ms": random.randint(1, 500),
        "user_id": "user-%05d" % random.randint(0, 99999),
    })
"""


def bootstrap_servers() -> str:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    out = subprocess.run([str(ROOT / "scripts/local-kafka"), "start"], capture_output=True,
                         text=True, check=True).stdout
    return out.strip().splitlines()[-1].split("=", 1)[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(port: int) -> dict | None:
    """Timestamps emitted, events delivered and the lag histogram's cumulative buckets."""
    samples = readback.scrape(port)
    if samples is None:
        return None
    return {"timestamps": readback.metric(samples, "connector_timestamps_total"),
            "delivered": readback.metric(samples, "connector_events_delivered_total"),
            "lag": readback.buckets(samples, "connector_schedule_lag_seconds")}


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """Upper bound of the bucket holding quantile q of cumulative buckets {le: count}."""
    total = buckets.get(float("inf"), 0)
    if total <= 0:
        return None
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le
    return float("inf")


def window(after: dict, before: dict) -> dict[float, float]:
    return {le: n - before["lag"].get(le, 0) for le, n in after["lag"].items()}


def read_back(bootstrap: str, topic: str) -> tuple[int, int]:
    """(records, distinct `n` values) of the topic, read to each partition's end."""
    import orjson

    values = readback.read_topic(bootstrap, topic)
    return len(values), len({orjson.loads(v)["n"] for v in values})


def summary_numbers(stderr: str) -> dict:
    """produced, and the kafka output's delivered / failed, from the run summary."""
    s = readback.summary(stderr)
    out: dict = {"produced": s["produced"]} if s["produced"] is not None else {}
    if "kafka-0" in s["outputs"]:
        out["delivered"], out["failed"] = s["outputs"]["kafka-0"]
    return out


def soak(bootstrap: str, seconds: float, rate: float, baseline: float, every: float) -> dict:
    from confluent_kafka.admin import AdminClient, NewTopic

    prefix = os.environ.get("SOAK_TOPIC_PREFIX", "")
    topic = f"{prefix}soak-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(60)
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    try:
        (work / "soak.py").write_text(SCRIPT)
        (work / "config.yaml").write_text(json.dumps({  # JSON is YAML
            "input": [{"rate": {"per_second": rate}}],
            "event": {"script": {"path": "soak.py"}},
            "output": [{"kafka": {"bootstrap_servers": bootstrap, "topic": topic,
                                  "dead_letter": "dead.jsonl"}}],
        }))
        port = free_port()
        cmd = [sys.executable, "-m", "connector", "run", str(work / "config.yaml"), "--quiet",
               "--duration", str(seconds), "--metrics-port", str(port), "--seed", "1"]
        started = time.monotonic()
        with open(work / "stderr", "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=work)
        samples = []
        next_at = started + every
        while proc.poll() is None:
            time.sleep(max(0.0, min(0.5, next_at - time.monotonic())))
            if time.monotonic() < next_at or proc.poll() is not None:
                continue
            next_at += every
            rss, metrics = rss_mb(proc.pid), scrape(port)
            if metrics is None:
                continue
            sample = {"t": round(time.monotonic() - started, 2), "rss_mb": round(rss, 1),
                      **metrics}
            if samples:
                prev = samples[-1]
                sample["rate"] = (sample["timestamps"] - prev["timestamps"]) / (
                    sample["t"] - prev["t"])
                sample["lag_p99_ms"] = _ms(quantile(window(sample, prev), 0.99))
            samples.append(sample)
            print(_row(sample), file=sys.stderr, flush=True)
        code = proc.wait()
        stderr = (work / "stderr").read_text(errors="replace")
        numbers = summary_numbers(stderr)
        records, distinct = read_back(bootstrap, topic)
    finally:
        admin.delete_topics([topic])[topic].result(60)
        shutil.rmtree(work, ignore_errors=True)
    return judge(samples, numbers, records, distinct, code, stderr, rate, baseline, seconds)


def judge(samples, numbers, records, distinct, code, stderr, rate, baseline, seconds) -> dict:
    after = [s for s in samples if s["t"] >= baseline]
    checks: dict = {}
    if after:
        base, peak = after[0]["rss_mb"], max(s["rss_mb"] for s in after)
        growth = peak / base - 1
        checks["rss"] = {"ok": growth < 0.10, "baseline_mb": base, "peak_mb": peak,
                         "growth": round(growth, 4), "limit": 0.10}
    else:
        checks["rss"] = {"ok": False, "why": f"no sample after the {baseline:g} s baseline"}
    last = samples[-1] if samples else {"lag": {}}
    p99 = quantile(last["lag"], 0.99)
    # the histogram knows p99 only up to its bucket: "under 10 ms" is "in the 10 ms bucket"
    checks["lag"] = {"ok": p99 is not None and p99 <= 0.010, "p99_ms": _ms(p99), "limit_ms": 10}
    if len(samples) >= 2:
        first = samples[0]
        achieved = (last["timestamps"] - first["timestamps"]) / (last["t"] - first["t"])
        checks["rate"] = {"ok": abs(achieved / rate - 1) <= 0.01, "target": rate,
                          "achieved": round(achieved, 1), "limit": 0.01}
    else:
        checks["rate"] = {"ok": False, "why": "fewer than 2 samples"}
    produced = numbers.get("produced")
    checks["accounts"] = {
        "ok": code == 0 and "Traceback" not in stderr and numbers.get("failed") == 0
        and records == distinct == numbers.get("delivered") == produced and bool(produced),
        "exit_code": code, "produced": produced, "delivered": numbers.get("delivered"),
        "failed": numbers.get("failed"), "topic_records": records, "topic_distinct": distinct,
    }
    return {"seconds": seconds, "rate": rate, "baseline": baseline, "checks": checks,
            "samples": [{k: v for k, v in s.items() if k != "lag"} for s in samples],
            "stderr_tail": stderr[-2000:]}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _row(s: dict) -> str:
    rate = f"{s['rate']:9,.1f}/s" if "rate" in s else " " * 11
    lag = f"lag p99 <= {s['lag_p99_ms']} ms" if s.get("lag_p99_ms") is not None else ""
    return f"soak: t={s['t']:7.1f}s rss {s['rss_mb']:6.1f} MB {rate} {lag}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="run length (default 600)")
    parser.add_argument("--rate", type=float, default=5000, help="events/s (default 5000)")
    parser.add_argument("--baseline", type=float, default=60,
                        help="seconds in: the RSS baseline (default 60)")
    parser.add_argument("--every", type=float, default=10, help="sample period (default 10)")
    parser.add_argument("--require", default=",".join(CHECKS),
                        help=f"checks that decide the exit code (default {','.join(CHECKS)})")
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    args = parser.parse_args(argv)
    required = [c for c in args.require.split(",") if c]
    unknown = set(required) - set(CHECKS)
    if unknown:
        parser.error(f"--require: unknown check(s) {sorted(unknown)}; known: {CHECKS}")
    report = soak(bootstrap_servers(), args.seconds, args.rate, args.baseline, args.every)
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["required"] = required
    for name, check in report["checks"].items():
        detail = ", ".join(f"{k} {v}" for k, v in check.items() if k != "ok")
        print(f"soak: {name}: {'ok' if check['ok'] else 'FAILED'} ({detail})", file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0 if all(report["checks"][c]["ok"] for c in required) else 1


if __name__ == "__main__":
    sys.exit(main())
