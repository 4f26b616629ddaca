"""scripts/local-schema-registry: start, status and stop of a registry of its own (the binary
is the one the suite's registry uses, installed once into the cache)."""

import os
import subprocess
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from connector.testing import free_port
from tests.harness.cli import ROOT

SCRIPT = ROOT / "scripts" / "local-schema-registry"


def test_start_status_stop_in_a_state_folder_of_its_own(schema_registry_url, tmp_path):
    port = free_port()
    env = {**os.environ, "LOCAL_SCHEMA_REGISTRY_PORT": str(port),
           "LOCAL_SCHEMA_REGISTRY_DIR": str(tmp_path / "state")}

    def script(command: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(SCRIPT), command], capture_output=True,
                              text=True, timeout=600, env=env)

    assert script("status").returncode == 3
    started = script("start")
    try:
        assert started.returncode == 0, started.stderr
        url = f"http://127.0.0.1:{port}"
        assert started.stdout.splitlines()[-1] == f"SCHEMA_REGISTRY_URL={url}"
        client = SchemaRegistryClient({"url": url})
        schema_id = client.register_schema("probe-value", Schema('{"type": "string"}', "AVRO"))
        assert client.get_latest_version("probe-value").schema_id == schema_id
        again = script("start")  # already running: the same address
        assert again.returncode == 0 and again.stdout.splitlines()[-1] == f"SCHEMA_REGISTRY_URL={url}"
        status = script("status")
        assert status.returncode == 0 and status.stdout.splitlines()[-1] == f"SCHEMA_REGISTRY_URL={url}"
    finally:
        assert script("stop").returncode == 0
    assert script("status").returncode == 3
    assert not (tmp_path / "state" / "schema-registry.pid").exists()


def test_usage_is_exit_2():
    done = subprocess.run([sys.executable, str(SCRIPT), "restart"], capture_output=True, text=True)
    assert done.returncode == 2 and "start|stop|status" in done.stderr
