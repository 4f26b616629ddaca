"""The basic example, recording when each produce() call ran (the live ramp row reads it)."""

import atexit
import importlib.util
import json
import os
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "basic", Path(__file__).resolve().parent.parent / "examples/basic/produce.py"
)
_basic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_basic)
_calls: list[float] = []


def produce(params):
    _calls.append(time.time())
    return _basic.produce(params)


atexit.register(lambda: Path(os.environ["BENCH_PROBE_OUT"]).write_text(json.dumps(_calls)))
