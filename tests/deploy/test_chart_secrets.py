"""The chart on a secured cluster, by rendering: credentials named by `existingSecret`
(SASL, registry, OTLP token) reach the pod as secretKeyRef variables the config reads, TLS
files are mounted read-only from a Secret with their folder in CONNECTOR_TLS_DIR, every
manifest validates, and nothing secret is in a ConfigMap."""

from __future__ import annotations

import pytest
import yaml

from tests.harness.cli import ROOT

CHART = ROOT / "charts" / "connector"
SECRETS = [
    {"env": "KAFKA_PASSWORD", "existingSecret": "kafka-credentials", "key": "password"},
    {"env": "REGISTRY_AUTH", "existingSecret": "registry-credentials", "key": "user-password"},
    {"env": "OTLP_TOKEN", "existingSecret": "tempo-token", "key": "token"},
]
CONFIG = {
    "input": [{"cron": {"expression": "* * * * * *"}}],
    "event": {"script": {"path": "produce.py"}},
    "output": [
        {"kafka": {"bootstrap_servers": "kafka:9093", "topic": "t",
                   "producer": {"security.protocol": "SASL_SSL",
                                "sasl.mechanism": "SCRAM-SHA-512",
                                "sasl.username": "connector",
                                "sasl.password": "${KAFKA_PASSWORD}",
                                "ssl.ca.location": "${CONNECTOR_TLS_DIR}/ca.pem"},
                   "schema_registry": {"url": "https://registry:8081",
                                       "basic_auth": "${REGISTRY_AUTH}",
                                       "tls": {"ca_file": "${CONNECTOR_TLS_DIR}/ca.pem"}}}},
        {"otlp": {"endpoint": "https://tempo:4317",
                  "tls": {"ca_file": "${CONNECTOR_TLS_DIR}/ca.pem"},
                  "headers": {"X-Scope-OrgID": "team-a",
                              "Authorization": "Bearer ${OTLP_TOKEN}"}}},
    ],
}


def _helm():
    try:
        import helm_python
    except ImportError as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"helm-python-sdk is missing ({exc}): pip install -e '.[test]'")
    return helm_python


def _render(**values) -> list[dict]:
    out = _helm().Chart.load(CHART).render(values, name="rel", namespace="load")
    return [doc for name, text in out.items() if not name.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]


def _pod(manifests: list[dict]) -> dict:
    (workload,) = [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet")]
    return workload["spec"]["template"]["spec"]


@pytest.mark.parametrize("sharded", [False, True])
def test_existing_secrets_and_tls_files_reach_the_pod_and_nothing_secret_the_configmap(
    sharded,
):
    manifests = _render(config=CONFIG, secrets=SECRETS, tls={"existingSecret": "kafka-tls"},
                        sharding={"enabled": sharded}, replicas=2)
    assert not [m for m in manifests if m["kind"] == "Secret"], "the chart makes no Secret"
    pod = _pod(manifests)
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    for ref in SECRETS:
        assert env[ref["env"]]["valueFrom"] == {
            "secretKeyRef": {"name": ref["existingSecret"], "key": ref["key"]}}
    assert env["CONNECTOR_TLS_DIR"]["value"] == "/etc/connector-tls"
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
    assert mount == {"name": "tls", "mountPath": "/etc/connector-tls", "readOnly": True}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert volume == {"name": "tls", "secret": {"secretName": "kafka-tls", "defaultMode": 0o400}}
    # the config mounted holds only ${VAR} references: no value of a Secret
    maps = [m for m in manifests if m["kind"] == "ConfigMap"]
    text = "\n".join(v for m in maps for v in (m.get("data") or {}).values())
    assert "${KAFKA_PASSWORD}" in text and "Bearer ${OTLP_TOKEN}" in text
    for ref in SECRETS:  # no Secret's name or key is needed by the config's text
        assert ref["existingSecret"] not in text
    kv = _kubernetes_validate()
    for manifest in manifests:
        if manifest["kind"] != "ServiceMonitor":
            kv.validate(manifest, "1.32", strict=True)


def _kubernetes_validate():
    try:
        import kubernetes_validate
    except ImportError as exc:  # pragma: no cover
        pytest.fail(f"kubernetes-validate is missing ({exc}): pip install -e '.[test]'")
    return kubernetes_validate


def test_without_tls_nothing_is_mounted():
    pod = _pod(_render(config=CONFIG, secrets=SECRETS))
    assert "tls" not in {v["name"] for v in pod["volumes"]}
    assert "CONNECTOR_TLS_DIR" not in {e["name"] for e in pod["containers"][0]["env"]}


@pytest.mark.parametrize("bad, says", [
    ({"secrets": [{"env": "X", "existingSecret": "s"}]}, "key"),
    ({"secrets": [{"env": "X", "existingSecret": "s", "key": "k", "value": "hunter2"}]},
     "value"),
    ({"tls": {"existingSecret": "s", "mountPath": "relative"}}, "mountPath"),
])
def test_bad_secret_values_are_refused(bad, says):
    with pytest.raises(_helm().HelmError) as caught:
        _render(config=CONFIG, **bad)
    assert says in str(caught.value)
    assert "hunter2" not in str(caught.value)
