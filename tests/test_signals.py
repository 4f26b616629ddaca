"""Signals against a real broker: SIGTERM while the broker is down ends within flush_timeout,
and the accounts hold (a broker of the test's own, killed; never the shared one)."""

import json
import signal
import subprocess
import sys
import time
from collections import Counter

from tests.conftest import Result
from tests.test_metrics import free_port, scrape_or_none, wait_for


def test_sigterm_while_the_broker_is_down_ends_within_flush_timeout(write, tmp_path):
    from tests.kafka_service import OwnBroker
    from tests.test_kafka import consume

    broker = OwnBroker(tmp_path / "broker")
    broker.start()
    try:
        port = free_port()
        write("s.py", "n = 0\ndef produce(p):\n    global n\n    n += 1\n    return str(n)\n")
        config = write("c.yaml", f"""
            mode: backfill
            input: [{{rate: {{per_second: 100000, start: "2026-01-01T00:00:00Z", end: "2026-01-01T01:00:00Z"}}}}]
            event: {{script: {{path: s.py}}}}
            output:
              - kafka:
                  bootstrap_servers: '{broker.bootstrap}'
                  topic: sig
                  flush_timeout: 5
                  dead_letter: dead.jsonl
            """)
        proc = subprocess.Popen([sys.executable, "-m", "connector", "run", str(config),
                                 "--metrics-port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            key = ("connector_events_delivered_total", (("output", "kafka-0"),))
            wait_for(lambda: (scrape_or_none(port) or {}).get(key, 0) > 50_000, timeout=60)
            broker.kill()
            time.sleep(2)  # the local queue fills: the pipeline waits for room
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            took = time.monotonic() - sent
        finally:
            proc.kill()
        assert took < 5 + 5, (took, err)  # flush_timeout, plus a margin to settle and exit
        assert proc.returncode == 1, err
        assert "Traceback" not in err and "stopped: SIGTERM received" in err
        result = Result(proc.returncode, "", err)
        counts = result.summary("kafka-0")
        assert counts["delivered"] + counts["failed"] == counts["produced"], err
        dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
        assert len(dead) == counts["failed"] > 0
        assert len({d["value"] for d in dead}) == len(dead)  # each failure dead-lettered once
        reasons = Counter(d["error"].split(":")[0] for d in dead)
        possibly = sum(n for r, n in reasons.items() if "possibly written" in r)
        broker.start()
        values = [m.value().decode() for m in consume(broker.bootstrap, ["sig"], idle=10)]
        assert len(values) == len(set(values))  # no duplicates
        assert counts["delivered"] <= len(values) <= counts["delivered"] + possibly
        assert not set(values) & ({d["value"] for d in dead} - {
            d["value"] for d in dead if "possibly written" in d["error"]})
    finally:
        broker.stop()
