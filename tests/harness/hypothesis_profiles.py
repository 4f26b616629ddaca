"""Hypothesis profiles for the fuzz properties, chosen by HYPOTHESIS_PROFILE.

- `default` (CI): deterministic (derandomize, no example database, no deadline), so the
  suite cannot fail one day and pass the next; each property's `max_examples` is set by
  `budget(n)` to keep all fuzz properties together at about 2 minutes on 2 cores.
- `long`: explores for hours with fresh randomness and keeps what it finds in the example
  database (`.local/hypothesis/`, ignored by git), so a failure found overnight replays
  on the next run.
  `HYPOTHESIS_PROFILE=long python3 -m pytest tests/fuzz`
- `discover`: `default` without the explicit examples (the regressions), so that while a
  known defect is still open the generated inputs can find the next one.

conftest.py imports this module; the fuzz modules import it too, so they work alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
LONG_FACTOR = 2_000  # `long` runs each property this many times its CI budget

# Runs of the real CLI are slow (a process each) and draw large values on purpose.
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture]

settings.register_profile(
    "default",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "long",
    derandomize=False,
    database=DirectoryBasedExampleDatabase(
        Path(__file__).resolve().parents[2] / ".local" / "hypothesis"
    ),
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "discover", settings.get_profile("default"),
    phases=[Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
settings.load_profile(PROFILE if PROFILE in ("default", "long", "discover") else "default")


def budget(examples: int) -> settings:
    """A property's settings: `examples` in CI, LONG_FACTOR times as many under `long`."""
    return settings(max_examples=examples * (LONG_FACTOR if PROFILE == "long" else 1))
