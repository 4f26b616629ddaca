"""The Helm chart, checked without a cluster.

Rendered and linted by Helm's own Go library (helm-python-sdk, offline), every manifest
validated against the Kubernetes 1.29 and 1.32 schemas (kubernetes-validate, offline),
and what would break in a cluster asserted directly: the config path the container runs
is the one mounted, the probes reach the connector's real endpoints, the rendered config
and scripts pass the real `connector validate`, the StatefulSet appears only with
sharding, no secret value lands in a ConfigMap, and the values schema rejects wrong types.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from connector.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "connector"
EXAMPLE_VALUES = sorted((ROOT / "examples" / "helm").glob("*.yaml"))
CASES = ["default", *(p.stem for p in EXAMPLE_VALUES)]
KUBERNETES_VERSIONS = ["1.29", "1.32"]
# Custom resources have no schema in kubernetes-validate: their fields are asserted by hand.
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
CONFIG_PATH = "/etc/connector/config.yaml"
METRICS_PORT = 9464
# Every metric the connector exports (the dashboard may use no other).
METRICS = {
    "connector_timestamps_total",
    "connector_events_produced_total",
    "connector_script_errors_total",
    "connector_events_delivered_total",
    "connector_events_failed_total",
    "connector_delivery_latency_seconds",
    "connector_schedule_lag_seconds",
    "connector_schedule_behind_seconds",
    "connector_input_target_rate",
    "connector_output_pending_events",
    "connector_events_filtered_total",
    "connector_transactions_total",
    "connector_transaction_seconds",
    "connector_verify_checked_total",
    "connector_verify_visible_seconds",
    "connector_info",
}
SECRET_KEY = re.compile(r"(password|passwd|secret|token|authorization|api[_.-]?key)$", re.I)
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-[^}]*)?\}")


# -- tools: a missing one fails the run with the fix, never skips ---------------------------


@functools.cache
def helm():
    try:
        import helm_python
    except ImportError as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"helm-python-sdk is missing ({exc}): pip install -e '.[test]'")
    return helm_python


@functools.cache
def kubernetes_validate():
    try:
        import kubernetes_validate as kv
    except ImportError as exc:  # pragma: no cover
        pytest.fail(f"kubernetes-validate is missing ({exc}): pip install -e '.[test]'")
    return kv


# -- rendering ------------------------------------------------------------------------------


def values_of(case: str) -> dict[str, Any] | None:
    """A case's values as `helm -f` reads them (Helm's own YAML parser); None for defaults."""
    if case == "default":
        return None
    return helm().values_from_yaml((ROOT / "examples" / "helm" / f"{case}.yaml").read_text())


def merged(case: str, **overrides: Any) -> dict[str, Any]:
    """The case's values with overrides deep-merged in, as `--set` would."""
    values = json.loads(json.dumps(values_of(case) or {}))
    for dotted, value in overrides.items():
        *parents, last = dotted.split("__")
        node = values
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return values


class Rendered:
    def __init__(self, outputs: dict[str, str]):
        self.notes = outputs.pop("connector/templates/NOTES.txt", "")
        self.manifests = [
            doc
            for text in outputs.values()
            for doc in yaml.safe_load_all(text)
            if doc
        ]

    def of_kind(self, kind: str) -> list[dict]:
        return [m for m in self.manifests if m["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [m for m in self.of_kind(kind) if name is None or m["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
        return found[0]

    @property
    def workload(self) -> dict:
        found = self.of_kind("Deployment") + self.of_kind("StatefulSet")
        assert len(found) == 1, f"expected one Deployment or StatefulSet, got {len(found)}"
        return found[0]

    @property
    def pod(self) -> dict:
        return self.workload["spec"]["template"]

    @property
    def container(self) -> dict:
        (container,) = self.pod["spec"]["containers"]
        return container

    def config_maps(self) -> dict[str, dict[str, str]]:
        return {m["metadata"]["name"]: m.get("data", {}) for m in self.of_kind("ConfigMap")}

    def mounted_files(self, directory: str) -> dict[str, str]:
        """File name -> content of what the pod sees in `directory` (projected ConfigMaps)."""
        mounts = [m for m in self.container["volumeMounts"] if m["mountPath"] == directory]
        assert len(mounts) == 1, f"nothing (or several volumes) mounted at {directory}"
        volumes = {v["name"]: v for v in self.pod["spec"]["volumes"]}
        volume = volumes[mounts[0]["name"]]
        sources = (
            [s["configMap"] for s in volume["projected"]["sources"]]
            if "projected" in volume
            else [volume["configMap"]]
        )
        maps, files = self.config_maps(), {}
        for source in sources:
            assert source["name"] in maps, f"volume refers to ConfigMap {source['name']}, not rendered"
            for key, content in maps[source["name"]].items():
                assert key not in files, f"{key} is projected twice into {directory}"
                files[key] = content
        return files

    def env(self) -> list[dict]:
        return self.container.get("env", [])


@functools.cache
def _render(case: str, overrides: str, name: str) -> dict[str, str]:
    values = merged(case, **json.loads(overrides)) if overrides != "{}" else values_of(case)
    return helm().Chart.load(CHART).render(values, name=name, namespace="load")


def render(case: str = "default", name: str = "rel", **overrides: Any) -> Rendered:
    return Rendered(dict(_render(case, json.dumps(overrides, sort_keys=True), name)))


def render_error(case: str = "default", **overrides: Any) -> str:
    with pytest.raises(helm().HelmError) as caught:
        helm().Chart.load(CHART).render(merged(case, **overrides), name="rel", namespace="load")
    return str(caught.value)


def pod_environment(rendered: Rendered, index: int = 0) -> dict[str, str]:
    """The environment a pod would get: literal values, a stand-in for each Secret key,
    the pod's index for the pod-index label."""
    env = {}
    for var in rendered.env():
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        source = var["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[var["name"]] = f"stand-in-for-{ref['name']}-{ref['key']}"
        elif source.get("fieldRef", {}).get("fieldPath") == (
            "metadata.labels['apps.kubernetes.io/pod-index']"
        ):
            env[var["name"]] = str(index)
        else:
            pytest.fail(f"no stand-in for env {var['name']}: {source}")
    return env


def write_config_dir(rendered: Rendered, folder: Path) -> Path:
    """The files of /etc/connector, written into `folder`; returns the config's path there."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in rendered.mounted_files(str(PurePosixPath(CONFIG_PATH).parent)).items():
        (folder / name).write_text(content)
    return folder / PurePosixPath(CONFIG_PATH).name


def connector(*args: str, env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True, text=True, timeout=60, env=os.environ | env, **kw,
    )


# -- Helm -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_helm_lint_strict_passes(case):
    report = helm().lint(CHART, values_of(case), strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, f"helm lint --strict ({case}): {problems}"


def test_chart_metadata_matches_the_package():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    assert chart["appVersion"] == version, "appVersion is the image tag: keep it = pyproject's"
    assert render().container["image"] == f"connector:{version}"


# -- Kubernetes schemas ---------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_every_manifest_validates_against_kubernetes_schemas(case, version):
    kv = kubernetes_validate()
    rendered = render(case)
    validated = []
    for manifest in rendered.manifests:
        what = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if (manifest["apiVersion"], manifest["kind"]) in CRDS:
            continue  # no schema bundled; see test_service_monitor_selects_the_metrics_port
        try:
            used = kv.validate(manifest, version, strict=True)
        except kv.ValidationError as exc:
            path = ".".join(map(str, exc.path))
            pytest.fail(f"{case}: {what} is invalid for Kubernetes {version}: {path}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            pytest.fail(f"{case}: {what}: {exc.message}")
        assert used == version, f"validated against {used}, not {version}"
        validated.append(manifest["kind"])
    assert {"ConfigMap", "Service", "ServiceAccount"} <= set(validated)
    assert {"Deployment", "StatefulSet"} & set(validated)


# -- the config the container runs ----------------------------------------------------------


def dockerfile_instruction(name: str) -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    (line,) = re.findall(rf"^{name}\s+(\[.*\])\s*$", text, re.M)
    return json.loads(line)


@pytest.mark.parametrize("case", CASES)
def test_mounted_config_is_the_one_the_container_runs(case):
    rendered = render(case)
    args = rendered.container["args"]
    assert "command" not in rendered.container, "the image's ENTRYPOINT must stay `connector`"
    assert dockerfile_instruction("ENTRYPOINT") == ["connector"]
    assert args[:2] == ["run", CONFIG_PATH]
    assert dockerfile_instruction("CMD") == ["run", CONFIG_PATH], "image default = chart's path"

    files = rendered.mounted_files(str(PurePosixPath(CONFIG_PATH).parent))
    assert PurePosixPath(CONFIG_PATH).name in files
    config = yaml.safe_load(files["config.yaml"])
    script = config["event"]["script"]["path"]
    assert script in files, f"the config's script {script} is not mounted beside it"
    mount = next(m for m in rendered.container["volumeMounts"] if m["mountPath"] == "/etc/connector")
    assert mount["readOnly"] is True


@pytest.mark.parametrize("case", CASES)
def test_chart_arguments_are_understood_by_the_connector(case):
    from connector.cli import _parser

    rendered = render(case)
    args = rendered.container["args"]
    try:
        parsed = _parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"`connector {' '.join(args)}` is refused by the connector's CLI")
    assert str(parsed.config) == CONFIG_PATH
    assert parsed.metrics_port == METRICS_PORT
    values = values_of(case) or {}
    assert parsed.seed == values.get("seed")


@pytest.mark.parametrize("case", CASES)
def test_rendered_config_passes_connector_validate(case, tmp_path):
    """`connector validate` on exactly the files the pod sees, with the pod's environment."""
    rendered = render(case)
    config = write_config_dir(rendered, tmp_path / "etc-connector")
    env = pod_environment(rendered)
    result = connector("validate", str(config), env=env)
    assert result.returncode == 0, f"{case}: connector validate failed:\n{result.stderr}"
    assert "valid" in result.stdout


def test_scripts_in_example_values_are_the_example_scripts():
    default = render().mounted_files("/etc/connector")
    assert set(default) == {"config.yaml", "produce.py"}
    assert default["produce.py"] == (ROOT / "examples/basic/produce.py").read_text()
    for case, name, source in [
        ("kafka-feeder", "produce.py", "examples/basic/produce.py"),
        ("sharded-load", "produce.py", "examples/basic/produce.py"),
        ("ramped-load", "produce.py", "examples/basic/produce.py"),
        ("trace-generator", "tracing.py", "examples/tracing/tracing.py"),
    ]:
        scripts = values_of(case)["scripts"]
        assert scripts[name].rstrip("\n") == (ROOT / source).read_text().rstrip("\n"), (
            f"examples/helm/{case}.yaml: scripts.{name} differs from {source}"
        )


def test_set_file_puts_a_script_beside_the_config():
    """The README's `--set-file 'scripts.tracing\\.py=examples/tracing/tracing.py'`."""
    values = helm().parse_set_file("scripts.tracing\\.py=examples/tracing/tracing.py".replace(
        "examples/", f"{ROOT}/examples/"
    ))
    values["config"] = {**(values_of("trace-generator")["config"])}
    values["config"]["output"] = [{"stdout": {}}]
    rendered = Rendered(helm().Chart.load(CHART).render(values, name="rel", namespace="load"))
    files = rendered.mounted_files("/etc/connector")
    tracing = (ROOT / "examples/tracing/tracing.py").read_text()
    assert files["tracing.py"].rstrip("\n") == tracing.rstrip("\n")
    assert "produce.py" not in files, "given scripts replace the chart's default one"


def test_scripts_keep_their_exact_text():
    script = "  # an indented first line\nimport json\n\n\ndef produce(p):\n\treturn '{}'\n"
    rendered = render(scripts={"produce.py": "x = 1", "odd.py": script, "y": "x = 1\n"})
    files = rendered.mounted_files("/etc/connector")
    assert files["odd.py"] == script
    assert files["y"] == "x = 1\n", "a file name YAML reads as a boolean stays a string"


def test_config_given_as_text_is_mounted_verbatim():
    text = "# comments stay\ninput:\n  - rate: {per_second: 1000000}\nevent:\n  script: {path: produce.py}\n"
    files = render(config=text).mounted_files("/etc/connector")
    assert files["config.yaml"] == text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"config__event": {"script": {"path": "missing.py"}}}, "is not among scripts"),
        ({"scripts": {"config.yaml": "x"}}, "config.yaml"),
    ],
)
def test_render_refuses_a_script_the_pod_would_not_find(overrides, message):
    assert message in render_error(**overrides)


def test_checksum_rolls_the_pods_when_config_or_scripts_change():
    def checksum(**overrides):
        return render(**overrides).pod["metadata"]["annotations"]["checksum/config"]

    base = checksum()
    assert checksum(scripts={"produce.py": "def produce(p):\n    return 'x'\n"}) != base
    assert checksum(config__timezone="Europe/Berlin") != base
    assert checksum(log={"level": "debug", "format": "json"}) == base


# -- probes and metrics ---------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_probes_and_services_point_at_the_metrics_port(case):
    rendered = render(case)
    container = rendered.container
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": METRICS_PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    args = container["args"]
    assert args[args.index("--metrics-port") + 1] == str(METRICS_PORT)

    from connector.config import MetricsConfig

    assert MetricsConfig().port == METRICS_PORT, "the connector's own default port"
    assert f"EXPOSE {METRICS_PORT}" in (ROOT / "Dockerfile").read_text()

    pod_labels = rendered.pod["metadata"]["labels"]
    for service in rendered.of_kind("Service"):
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]
    annotations = rendered.pod["metadata"]["annotations"]
    if annotations.get("prometheus.io/scrape") == "true":
        assert annotations["prometheus.io/port"] == str(METRICS_PORT)
        assert annotations["prometheus.io/path"] == "/metrics"


def test_metrics_port_value_moves_every_reference():
    rendered = render(metrics={"port": 9500, "service": {"port": 80}})
    assert rendered.container["ports"][0]["containerPort"] == 9500
    args = rendered.container["args"]
    assert args[args.index("--metrics-port") + 1] == "9500"
    assert rendered.pod["metadata"]["annotations"]["prometheus.io/port"] == "9500"
    assert rendered.one("Service")["spec"]["ports"][0]["port"] == 80


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def metric_family(sample: str) -> str:
    """connector_x_bucket / _sum / _count / _created -> the metric's documented name."""
    name = re.sub(r"_(bucket|sum|count|created)$", "", sample)
    return name if name in METRICS or f"{name}_total" not in METRICS else f"{name}_total"


def test_probes_answer_on_the_running_connector(tmp_path):
    """Start the connector with the chart's own arguments and environment; the probe paths
    and the port the chart declares must answer."""
    port = free_port()
    rendered = render(metrics={"port": port})
    config = write_config_dir(rendered, tmp_path / "etc-connector")
    args = [str(config) if a == CONFIG_PATH else a for a in rendered.container["args"]]
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=os.environ | pod_environment(rendered),
    )
    try:
        deadline, status = time.monotonic() + 20, {}
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = {path: get(f"http://127.0.0.1:{port}{path}") for path in
                          ("/healthz", "/readyz", "/metrics")}
            except OSError:
                status = {}
            if status and all(code == 200 for code, _ in status.values()) and (
                "connector_events_delivered_total" in status["/metrics"][1]
            ):
                break
            time.sleep(0.25)
        assert proc.poll() is None, f"connector exited {proc.returncode}:\n{proc.stderr.read()}"
        assert status, f"nothing answered on port {port}"
        for path in ("/healthz", "/readyz", "/metrics"):
            assert status[path][0] == 200, f"GET {path}: {status[path][0]}"
        exported = {metric_family(s) for s in re.findall(r"^(connector_\w+)[{ ]",
                                                         status["/metrics"][1], re.M)}
        assert exported <= METRICS, f"metrics the dashboard does not know: {exported - METRICS}"
        assert {"connector_info", "connector_events_produced_total",
                "connector_events_delivered_total"} <= exported
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"SIGTERM: exit {proc.returncode}:\n{proc.stderr.read()}"


# -- workload kind and sharding -------------------------------------------------------------


def env_map(rendered: Rendered) -> dict[str, dict]:
    return {e["name"]: e for e in rendered.env()}


@pytest.mark.parametrize("case", CASES)
def test_statefulset_appears_only_with_sharding(case):
    rendered = render(case)
    sharded = bool((values_of(case) or {}).get("sharding", {}).get("enabled"))
    assert bool(rendered.of_kind("StatefulSet")) is sharded
    assert bool(rendered.of_kind("Deployment")) is not sharded
    env = env_map(rendered)
    replicas = rendered.workload["spec"]["replicas"]
    if sharded:
        sts = rendered.one("StatefulSet")
        assert sts["spec"]["podManagementPolicy"] == "Parallel"
        headless = rendered.one("Service", sts["spec"]["serviceName"])
        assert headless["spec"]["clusterIP"] == "None"
        assert env["CONNECTOR_REPLICAS"] == {"name": "CONNECTOR_REPLICAS", "value": str(replicas)}
        assert env["CONNECTOR_REPLICA_INDEX"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
        }
    else:
        assert env["CONNECTOR_REPLICAS"]["value"] == "1"
        assert env["CONNECTOR_REPLICA_INDEX"]["value"] == "0"


def test_sharding_switch_on_default_values():
    assert render(sharding={"enabled": True}, replicas=3).one("StatefulSet")["spec"]["replicas"] == 3
    deployment = render(replicas=3)
    assert deployment.one("Deployment")["spec"]["replicas"] == 3
    assert env_map(deployment)["CONNECTOR_REPLICAS"]["value"] == "1", "no index without a StatefulSet"
    assert "WARNING" in deployment.notes


def test_sharded_example_splits_the_rate_across_its_replicas():
    """Each shard of examples/helm/sharded-load.yaml, given its index, takes slots i, i+N, ...
    of the full grid: together exactly the unsharded stream."""
    from datetime import UTC, datetime, timedelta

    from connector.identity import Identity
    from connector.inputs import rate

    rendered = render("sharded-load")
    config = yaml.safe_load(rendered.mounted_files("/etc/connector")["config.yaml"])
    # every shard counts from the release's schedule start, given to all pods alike
    settings = config["input"][0]["rate"]
    assert settings["start"] == "${CONNECTOR_SCHEDULE_START}"
    shared = {pod_environment(rendered, i)["CONNECTOR_SCHEDULE_START"] for i in range(4)}
    [start_text] = shared
    settings = rate.Config(**{**settings, "start": start_text})
    assert settings.shard
    replicas = rendered.workload["spec"]["replicas"]
    start = datetime.fromisoformat(start_text)
    assert abs(start - datetime.now(UTC)) < timedelta(minutes=5), "the release time"
    end = start + timedelta(milliseconds=10)
    shards = []
    for index in range(replicas):  # what the CLI reads from each pod's environment
        identity = Identity.from_environ(pod_environment(rendered, index))
        shards.append(list(rate.ticks(settings, start, end, identity=identity)))
    full = list(rate.ticks(settings.model_copy(update={"shard": False}), start, end))
    assert sorted(t for shard in shards for t in shard) == full
    assert all(len(s) == len(full) // replicas for s in shards)


def test_schedule_start_is_given_to_every_shard_and_a_string_config_is_left_alone():
    rendered = render("ramped-load", schedule={"start": "2026-12-24T18:00:00Z"})
    assert {pod_environment(rendered, i)["CONNECTOR_SCHEDULE_START"] for i in range(3)} == {
        "2026-12-24T18:00:00Z"
    }
    config = yaml.safe_load(rendered.mounted_files("/etc/connector")["config.yaml"])
    assert config["input"][0]["rate"]["start"] == "${CONNECTOR_SCHEDULE_START}"
    text = "input:\n  - rate: {per_second: 5, shard: true, start: '2026-01-01T00:00:00Z'}\n"
    verbatim = render("sharded-load", config=text).mounted_files("/etc/connector")["config.yaml"]
    assert verbatim == text
    assert "/schedule/start" in render_error(schedule={"start": "yesterday"})


# -- secrets --------------------------------------------------------------------------------


def secret_sourced(rendered: Rendered) -> set[str]:
    return {e["name"] for e in rendered.env() if "secretKeyRef" in e.get("valueFrom", {})}


def walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")
    else:
        yield path, node


@pytest.mark.parametrize("case", CASES)
def test_no_secret_value_in_any_configmap(case):
    rendered = render(case)
    assert not rendered.of_kind("Secret"), "the chart renders no Secret: it uses existing ones"
    config = yaml.safe_load(rendered.mounted_files("/etc/connector")["config.yaml"])
    from_secrets = secret_sourced(rendered)
    env_names = {e["name"] for e in rendered.env()}
    whole_secrets = any("secretRef" in source for source in rendered.container.get("envFrom", []))
    for path, value in walk(config):
        if SECRET_KEY.search(re.sub(r"\[\d+\]$", "", path.rsplit(".", 1)[-1])):
            refs = ENV_REF.findall(str(value))
            assert refs, f"{case}: config {path} holds a literal value, not a ${{VAR}}"
            for var, _default in refs:
                assert var in from_secrets or whole_secrets, (
                    f"{case}: config {path} uses ${{{var}}}, which no Secret provides"
                )
        for var, default in ENV_REF.findall(str(value)):
            if not default:
                assert var in env_names or rendered.container.get("envFrom"), (
                    f"{case}: config {path} needs ${{{var}}}, but the pod does not set it"
                )
    stand_ins = [v for k, v in pod_environment(rendered).items() if k in from_secrets]
    for name, data in rendered.config_maps().items():
        for stand_in in stand_ins:
            assert all(stand_in not in text for text in data.values()), name


@pytest.mark.parametrize(
    "line",
    [
        {"config__output": [{"kafka": {"bootstrap_servers": "k:9092", "topic": "t",
                                       "producer": {"sasl.password": "hunter2"}}}]},
        {"config__output": [{"otlp": {"endpoint": "c:4317",
                                      "headers": {"authorization": "Bearer abc"}}}]},
        {"config": "input: []\noutput:\n  - otlp:\n      api_key: abc123\n"},
    ],
)
def test_render_refuses_a_literal_secret_in_the_config(line):
    message = render_error(**line)
    assert "literal secret" in message
    assert "hunter2" not in message and "abc123" not in message, "the error must not echo it"


def test_secret_guard_can_be_turned_off():
    render(secretGuard=False, config__output=[{"stdout": {}}], config__note_token="x")


# -- values schema --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"replicas": "3"}, "/replicas"),
        ({"seed": "42"}, "/seed"),
        ({"metrics": {"port": "9464"}}, "/metrics/port"),
        ({"sharding": {"enabled": "yes"}}, "/sharding/enabled"),
        ({"terminationGracePeriodSeconds": "45"}, "/terminationGracePeriodSeconds"),
        ({"scripts": {"produce.py": 5}}, "/scripts/produce.py"),
        ({"config": 5}, "/config"),
        ({"replica": 3}, "replica"),
    ],
)
def test_values_schema_rejects_wrong_types(overrides, where):
    message = render_error(**overrides)
    assert "schema" in message and where in message, message
    report = helm().lint(CHART, merged("default", **overrides), strict=True)
    assert report["errors"], "helm lint must fail too"


def test_values_schema_accepts_every_example():
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(defaults)
    chart = helm().Chart.load(CHART)
    for case in CASES[1:]:
        jsonschema.Draft7Validator(schema).validate(chart.merge_values(values_of(case)))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate({**defaults, "replicas": "3"})


# -- pod hardening and shutdown -------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_pods_are_hardened(case):
    rendered = render(case)
    pod, container = rendered.pod["spec"], rendered.container
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(user[1]), "the image's user"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume, "/tmp is the one writable path"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    if pod.get("serviceAccountName") not in (None, "default"):
        rendered.one("ServiceAccount", pod["serviceAccountName"])


GRACE_MARGIN = 5  # seconds the chart keeps for the summary and the close, after the flush


@pytest.mark.parametrize("case", CASES)
def test_grace_period_outlasts_every_flush_timeout(case):
    rendered = render(case)
    grace = rendered.pod["spec"]["terminationGracePeriodSeconds"]
    config = yaml.safe_load(rendered.mounted_files("/etc/connector")["config.yaml"])
    from connector.outputs.base import OutputConfig

    default = OutputConfig.model_fields["flush_timeout"].default
    for entry in config.get("output") or [{"stdout": None}]:
        for plugin, settings in entry.items():
            if plugin != "name":
                flush = (settings or {}).get("flush_timeout", default)
                assert grace >= flush + GRACE_MARGIN, f"{case}: grace {grace}s, flush {flush}s"


def test_render_refuses_a_grace_period_below_a_flush_timeout():
    assert "flush_timeout" in render_error(terminationGracePeriodSeconds=20)
    assert "flush_timeout" in render_error(config__output=[{"stdout": {"flush_timeout": 60}}])


def test_render_refuses_a_grace_period_without_the_margin():
    # default flush_timeout 30: 30 s of grace would SIGKILL the pod while it prints the summary
    message = render_error(terminationGracePeriodSeconds=34)
    assert "terminationGracePeriodSeconds (34) must be at least 35" in message
    assert "output[0].stdout.flush_timeout (30 s) + 5 s" in message
    assert render(terminationGracePeriodSeconds=35).pod["spec"]["terminationGracePeriodSeconds"] == 35


def test_grace_check_covers_every_output_and_the_defaults():
    outputs = [
        {"name": "quick", "null": {"flush_timeout": 1}},
        {"stdout": None},  # defaults: flush_timeout 30
        {"file": {"path": "/tmp/x", "flush_timeout": 50}},
    ]
    message = render_error(config__output=outputs, terminationGracePeriodSeconds=54)
    assert "must be at least 55: output[2].file.flush_timeout (50 s)" in message
    assert "output[1].stdout" in render_error(
        config__output=outputs[:2], terminationGracePeriodSeconds=34
    )
    render(config__output=outputs, terminationGracePeriodSeconds=55)


def test_grace_check_reads_a_config_given_as_text():
    text = yaml.safe_dump({**_default_config(), "output": [{"stdout": {"flush_timeout": 60}}]})
    assert "must be at least 65" in render_error(config=text)
    assert render(config=text, terminationGracePeriodSeconds=65)


def test_grace_check_counts_linger_and_refuses_a_flush_timeout_it_cannot_read():
    message = render_error(extraArgs=["--linger", "20"])  # 30 + 5 + 20 > 45
    assert "must be at least 55" in message and "--linger 20 s" in message
    assert "must be at least 47" in render_error(extraArgs=["--linger=12"])
    message = render_error(config__output=[{"stdout": {"flush_timeout": "${FLUSH}"}}])
    assert "flush_timeout is ${FLUSH}, not a number" in message


def _default_config() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())["config"]


# -- optional objects -----------------------------------------------------------------------


def test_service_monitor_selects_the_metrics_port():
    assert not render().of_kind("ServiceMonitor"), "off by default"
    rendered = render("kafka-feeder")
    monitor = rendered.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    service = rendered.one("Service", rendered.workload["metadata"]["name"])
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["load"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"
    assert re.fullmatch(r"\d+s", endpoint["interval"])
    # Only the labelled Service, not the StatefulSet's headless one, may match: no double scrape.
    sharded = render("sharded-load")
    selector = sharded.one("ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert len([s for s in sharded.of_kind("Service")
                if selector.items() <= s["metadata"]["labels"].items()]) >= 1


def test_pod_disruption_budget():
    assert not render().of_kind("PodDisruptionBudget")
    rendered = render("sharded-load")
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= rendered.pod["metadata"]["labels"].items()
    assert "minAvailable" in render_error(
        "sharded-load", podDisruptionBudget={"enabled": True, "minAvailable": 4}
    )


def test_topology_spread_gets_this_releases_selector():
    rendered = render("sharded-load", name="other")
    (constraint,) = rendered.pod["spec"]["topologySpreadConstraints"]
    assert constraint["labelSelector"]["matchLabels"].items() <= rendered.pod["metadata"]["labels"].items()


def dashboard_exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_config_map_for_the_grafana_sidecar():
    assert not any(n.endswith("-dashboard") for n in render().config_maps()), "off by default"
    rendered = render(dashboard={"enabled": True, "annotations": {"grafana_folder": "Load"}})
    (cm,) = [m for m in rendered.of_kind("ConfigMap") if m["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Load"}
    text = (CHART / "dashboards" / "connector.json").read_text()
    assert cm["data"]["connector.json"].rstrip("\n") == text.rstrip("\n")


def test_dashboard_uses_only_the_connectors_metrics():
    dashboard = json.loads((CHART / "dashboards" / "connector.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    exprs = dashboard_exprs(dashboard)
    used = {re.sub(r"_bucket$", "", m) for e in exprs for m in re.findall(r"\bconnector_\w+", e)}
    assert used <= METRICS, f"not exported by the connector: {used - METRICS}"
    joined = "\n".join(exprs)
    for needle in [
        "rate(connector_events_produced_total",
        "rate(connector_events_delivered_total",
        "sum by (output, reason) (rate(connector_events_failed_total",
        "histogram_quantile(0.5, sum by (le, output) (rate(connector_delivery_latency_seconds_bucket",
        "histogram_quantile(0.99, sum by (le, output) (rate(connector_delivery_latency_seconds_bucket",
        "connector_schedule_lag_seconds_bucket",
        "connector_output_pending_events",
        "connector_script_errors_total",
        "rate(connector_events_filtered_total",
        "rate(connector_transactions_total",
        "connector_transaction_seconds_bucket",
    ]:
        assert needle in joined, f"no panel shows {needle}"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_notes_say_how_to_see_the_metrics():
    notes = render().notes
    assert "port-forward service/rel-connector 9464:9464" in notes
    assert "/metrics" in notes


def test_notes_say_how_to_watch_the_fleet_with_connector_top():
    sharded = render(sharding={"enabled": True}, replicas=3).notes
    assert "connector top dns://rel-connector-headless.load.svc:9464" in sharded
    assert "connector top --file pods.txt" in render(replicas=2).notes


def test_rendering_uses_helms_own_library():
    """Helm's Go SDK renders and lints here, bundled in helm-python-sdk: no binary to fetch."""
    assert re.fullmatch(r"v\d+\.\d+\.\d+", helm().helm_sdk_version())


def test_a_seeded_deployment_of_several_replicas_is_refused():
    # a Deployment's pods have no index: seeded replicas would all emit one stream
    assert "needs sharding.enabled" in render_error(seed=7, replicas=3)
    assert render(seed=7, replicas=1)  # one replica is fine
    assert render(seed=7, replicas=3, sharding={"enabled": True})
