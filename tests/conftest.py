"""The suite's root: fixtures from tests/harness/fixtures.py, the hypothesis profiles, and
how the run is scheduled and reported (tests/harness/parts.py)."""

import os

# Before anything imports grpc: an in-process OTLP test leaves gRPC's threads in this
# worker, and with fork support on, a child forked for a preexec_fn (ulimit, setsid, a
# closed stderr) runs gRPC's fork handlers and now and then aborts (-6, "epoll_wait error:
# Bad file descriptor") before it can exec.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

import tests.harness.hypothesis_profiles  # noqa: F401  (HYPOTHESIS_PROFILE: default | long | discover)

pytest_plugins = ["tests.harness.fixtures", "tests.harness.parts"]
