"""A 1 GB JSONL recording replays in constant memory: peak RSS under 150 MB."""

from __future__ import annotations

import json
import os
import subprocess
import sys

GB = 1 << 30
LIMIT_KB = 150 * 1024


def test_a_gigabyte_of_jsonl_replays_with_peak_rss_under_150_mb(tmp_path, write):
    path = tmp_path / "big.jsonl"
    pad = "x" * 900
    lines = 0
    with open(path, "w") as f:
        block = "".join(
            json.dumps({"timestamp": f"2026-01-01T00:00:{n % 60:02d}.{n:06d}+00:00"[:32],
                        "n": n, "pad": pad}) + "\n" for n in range(1000))
        while f.tell() < GB:
            f.write(block)
            lines += 1000
    try:
        config = write("c.yaml", json.dumps({
            "mode": "backfill",
            "input": [{"rate": {"per_second": 1_000_000, "start": "2026-03-01T00:00:00Z",
                                "end": "2026-03-01T01:00:00Z"}}],
            "event": {"replay": {"jsonl": {"path": str(path)}}},
            "output": [{"null": {}}],
        }))
        proc = subprocess.Popen([sys.executable, "-m", "connector", "run", str(config),
                                 "--metrics-port", "0", "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = proc.stderr.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0, err[-2000:]
        assert f"events produced: {lines} " in err, err[-2000:]
        assert usage.ru_maxrss < LIMIT_KB, f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB"
    finally:
        path.unlink()
