"""The suite's root: fixtures from tests/harness/fixtures.py, the hypothesis profiles, and
how the run is scheduled and reported (tests/harness/parts.py)."""

import tests.harness.hypothesis_profiles  # noqa: F401  (HYPOTHESIS_PROFILE: default | long | discover)

pytest_plugins = ["tests.harness.fixtures", "tests.harness.parts"]
