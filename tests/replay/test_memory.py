"""A 1 GB JSONL recording replays in constant memory: peak RSS under 150 MB."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.harness.fuzz import measured, peak_of

GB = 1 << 30
LIMIT_MIB = 150


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
        peak_file = tmp_path / "peak"
        proc = subprocess.run(measured([sys.executable, "-m", "connector", "run", str(config),
                                        "--metrics-port", "0", "--quiet"], peak_file),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = proc.stderr.decode(errors="replace")
        assert proc.returncode == 0, err[-2000:]
        assert f"events produced: {lines} " in err, err[-2000:]
        # measured through the launcher: a child forked straight from this (large) test
        # process would count its pages in the peak
        assert peak_of(peak_file) < LIMIT_MIB, f"peak RSS {peak_of(peak_file):.0f} MiB"
    finally:
        path.unlink()
