"""deploy/helm/bindrift rendered by a real helm: schema-valid, the same objects as deploy/kubernetes with the
default values, and every option doing what values.yaml says."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.deploy import manifests as m

from bindrift.config import load_settings

PROJECT = Path(__file__).resolve().parents[2]
CHART = PROJECT / "deploy" / "helm" / "bindrift"
PLAIN = PROJECT / "deploy" / "kubernetes"
CHART_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version")
SECRET_VALUES = {"secret": {"create": True, "databaseUrl": "postgresql+psycopg://u:p@db:5432/b",
                            "busUrl": "nats://nats:4222", "adminToken": "admin-secret",
                            "readToken": "read-secret"}}  # fmt: skip


def helm_run(
    helm: Path, *args: str, values: dict[str, Any] | None = None, tmp: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(helm), *args]
    if values is not None:
        assert tmp is not None
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        command += ["--values", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def render(helm: Path, tmp: Path, values: dict[str, Any] | None = None, release: str = "bindrift") -> list[m.Doc]:
    result = helm_run(helm, "template", release, str(CHART), "--namespace", "bindrift", values=values or {}, tmp=tmp)
    assert result.returncode == 0, result.stderr
    return m.parse(result.stdout)


def normalised(docs: list[m.Doc]) -> list[m.Doc]:
    """Sorted copies without the chart's own labels and the pods' config checksum."""
    out = []
    for doc in copy.deepcopy(docs):
        for key in CHART_ONLY_LABELS:
            doc["metadata"].get("labels", {}).pop(key, None)
        template = doc.get("spec", {}).get("template", {}).get("metadata", {})
        template.get("annotations", {}).pop("checksum/config", None)
        if template.get("annotations") == {}:
            del template["annotations"]
        out.append(doc)
    return sorted(out, key=lambda doc: (doc["kind"], doc["metadata"]["name"]))


@pytest.fixture(scope="module")
def plain() -> list[m.Doc]:
    return m.load(sorted(PLAIN.glob("*.yaml")))


def plain_secret_keys(plain: list[m.Doc]) -> dict[str, set[str]]:
    return {"bindrift": set(m.one(plain, "Secret", "bindrift")["stringData"])}


def test_helm_lint_strict_passes(helm: Path) -> None:
    result = helm_run(helm, "lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_the_defaults_render_the_plain_manifests(helm: Path, tmp_path: Path, plain: list[m.Doc]) -> None:
    docs = render(helm, tmp_path)
    assert m.schema_errors(docs) == []
    expected = [doc for doc in plain if doc["kind"] not in ("Namespace", "Secret")]
    assert normalised(docs) == normalised(expected)
    for doc in docs:
        assert doc["metadata"]["labels"]["helm.sh/chart"] == "bindrift-0.1.0"
    annotations = {doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                   for doc in docs if doc["kind"] in m.WORKLOADS}  # fmt: skip
    assert len(set(annotations.values())) == 1
    assert len(next(iter(annotations.values()))) == 64


def test_the_rendered_objects_pass_the_deployment_checks(helm: Path, tmp_path: Path, plain: list[m.Doc]) -> None:
    docs = render(helm, tmp_path)
    assert m.agent_errors(docs) == []
    assert m.reference_errors(docs, plain_secret_keys(plain)) == []
    assert m.service_errors(docs) == []
    assert m.wildcards(docs) == []
    assert m.grants(docs) == {"bindrift/bindrift-agent": {("", "pods", "get"), ("", "pods", "list"),
                                                          ("", "pods", "watch")}}  # fmt: skip
    assert [m.command_errors(c["args"], m.env_names(c)) for _, c in m.containers(docs)] == [[], [], []]


def test_pod_delete_is_opt_in(helm: Path, tmp_path: Path, plain: list[m.Doc]) -> None:
    docs = render(helm, tmp_path, {"rbac": {"podDelete": True}})
    assert m.schema_errors(docs) == []
    optional = m.load(sorted((PLAIN / "optional").glob("*.yaml")))
    assert m.grants(docs) == m.grants([*plain, *optional])
    assert ("", "pods", "delete") in m.grants(docs)["bindrift/bindrift-agent"]
    assert normalised(list(m.by_kind(docs, "ClusterRole").values())) == normalised(
        [*m.by_kind(plain, "ClusterRole").values(), *m.by_kind(optional, "ClusterRole").values()]
    )
    assert not m.by_kind(render(helm, tmp_path, {"rbac": {"create": False}}), "ClusterRole")


def test_the_secret_is_made_only_when_asked_and_then_needs_its_values(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, SECRET_VALUES)
    assert m.schema_errors(docs) == []
    secret = m.one(docs, "Secret", "bindrift")
    assert secret["stringData"] == {"database-url": "postgresql+psycopg://u:p@db:5432/b", "bus-url": "nats://nats:4222",
                                    "admin-token": "admin-secret", "read-token": "read-secret"}  # fmt: skip
    assert m.reference_errors(docs) == []
    missing = helm_run(helm, "template", "bindrift", str(CHART), "--set", "secret.create=true",
                       "--set", "secret.busUrl=nats://n:4222", "--set", "secret.adminToken=t")  # fmt: skip
    assert missing.returncode != 0
    assert "secret.databaseUrl is required with secret.create" in missing.stderr
    named = render(helm, tmp_path, {"secret": {"name": "prod-bindrift"}})
    assert m.reference_errors(named, {"prod-bindrift": {"database-url", "bus-url", "admin-token", "read-token"}}) == []


def test_options_reach_the_pods(helm: Path, tmp_path: Path) -> None:
    values = {
        "image": {"repository": "registry.internal/sec/bindrift", "digest": "sha256:" + "ab" * 32,
                  "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "agent": {"priorityClassName": "system-node-critical", "extraArgs": ["--host-path", "/srv"],
                  "nodeSelector": {"kubernetes.io/os": "linux"}},
        "worker": {"replicas": 4, "priorityClassName": "bindrift-central", "extraArgs": ["--batch", "128"]},
        "api": {"priorityClassName": "bindrift-central", "port": 9090, "service": {"port": 80}},
        "cluster": "prod-eu",
        "metrics": {"workerPort": 9100, "serviceMonitor": {"enabled": True, "interval": "15s",
                                                           "labels": {"release": "kube-prometheus-stack"}}},
        "config": {"retentionDays": 30,
                   "severity": {"Added Binary Executed": "medium", "Suspicious Binary": "critical"}},
    }  # fmt: skip
    docs = render(helm, tmp_path, values)
    assert m.schema_errors(docs) == []
    assert m.service_errors(docs) == []
    pods = {doc["metadata"]["name"]: doc["spec"]["template"]["spec"] for doc in docs if doc["kind"] in m.WORKLOADS}
    assert {name: pod.get("priorityClassName") for name, pod in pods.items()} == {
        "bindrift-agent": "system-node-critical", "bindrift-worker": "bindrift-central",
        "bindrift-api": "bindrift-central",
    }  # fmt: skip
    for pod in pods.values():
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
        (container,) = pod["containers"]
        assert container["image"] == "registry.internal/sec/bindrift@sha256:" + "ab" * 32
        assert container["imagePullPolicy"] == "Always"
    for name in ("bindrift-agent", "bindrift-api", "bindrift-worker"):
        (container,) = pods[name]["containers"]
        assert m.command_errors(container["args"], m.env_names(container)) == []
    assert pods["bindrift-agent"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pods["bindrift-agent"]["containers"][0]["args"][-2:] == ["--host-path", "/srv"]
    worker = pods["bindrift-worker"]["containers"][0]
    assert worker["args"] == ["worker", "--bus", "$(BINDRIFT_BUS)", "--metrics-port", "9100",
                              "--metrics-address", "0.0.0.0", "--batch", "128"]  # fmt: skip
    assert worker["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    # Prometheus Operator monitors: the API scraped with the read token, the workers on their metrics port.
    monitors = m.by_kind(docs, "ServiceMonitor")
    assert sorted(monitors) == ["bindrift-api", "bindrift-worker"]
    assert m.monitor_errors(docs, {"bindrift": {"database-url", "bus-url", "admin-token", "read-token"}}) == []
    (api_endpoint,) = monitors["bindrift-api"]["spec"]["endpoints"]
    assert api_endpoint == {
        "port": "http",
        "path": "/metrics",
        "interval": "15s",
        "authorization": {"type": "Bearer", "credentials": {"name": "bindrift", "key": "read-token"}},
    }
    assert all(mon["metadata"]["labels"]["release"] == "kube-prometheus-stack" for mon in monitors.values())
    assert m.one(docs, "Service", "bindrift-worker-metrics")["spec"]["ports"][0]["port"] == 9100
    assert pods["bindrift-api"]["containers"][0]["args"] == ["serve", "--host", "0.0.0.0", "--port", "9090"]
    assert m.one(docs, "Deployment", "bindrift-worker")["spec"]["replicas"] == 4
    assert m.one(docs, "Service", "bindrift-api")["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    config = m.one(docs, "ConfigMap", "bindrift-config")["data"]
    assert config["cluster"] == "prod-eu"
    path = tmp_path / "config.toml"
    path.write_text(config["config.toml"])
    settings = load_settings(path)
    assert settings.retention_days == 30
    assert settings.severity == {"Added Binary Executed": "medium", "Suspicious Binary": "critical"}


def test_worker_metrics_off_and_monitors_checked(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"metrics": {"workerPort": 0, "serviceMonitor": {"enabled": True}}})
    assert m.schema_errors(docs) == [] and m.service_errors(docs) == []
    worker = m.one(docs, "Deployment", "bindrift-worker")["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"] == ["worker", "--bus", "$(BINDRIFT_BUS)"] and "ports" not in worker
    assert "bindrift-worker-metrics" not in m.by_kind(docs, "Service")
    assert sorted(m.by_kind(docs, "ServiceMonitor")) == ["bindrift-api"]
    # The checks catch a monitor that scrapes nothing or reads a token that is not there.
    broken = copy.deepcopy(m.one(docs, "ServiceMonitor", "bindrift-api"))
    broken["spec"]["endpoints"][0]["port"] = "metrics"
    broken["spec"]["endpoints"][0]["authorization"]["credentials"]["key"] = "token"
    others = [doc for doc in docs if doc["kind"] != "ServiceMonitor"]
    assert m.monitor_errors([*others, broken], {"bindrift": {"read-token"}}) == [
        "ServiceMonitor/bindrift-api: Service bindrift-api has no port metrics",
        "ServiceMonitor/bindrift-api: no Secret key bindrift/token",
    ]
    broken["spec"]["endpoints"][0]["port"] = 8080
    assert m.schema_errors([broken]) == ["ServiceMonitor/bindrift-api: data/spec/endpoints/0/port must be string"]


def test_a_bad_extra_argument_is_caught(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"agent": {"extraArgs": ["--duration", "soon"]}})
    (agent,) = [c for w, c in m.containers(docs) if w["kind"] == "DaemonSet"]
    assert m.command_errors(agent["args"], m.env_names(agent)) == [
        "bindrift watch: Invalid value for '--duration': 'soon' is not a valid float."
    ]


def test_capabilities_by_default_privileged_only_when_asked(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path)
    assert m.schema_errors(docs) == []
    assert m.agent_errors(docs) == []
    (agent,) = [c for w, c in m.containers(docs) if w["kind"] == "DaemonSet"]
    assert agent["securityContext"] == {
        "privileged": False, "capabilities": {"drop": ["ALL"], "add": ["BPF", "PERFMON", "SYS_ADMIN", "SYS_PTRACE",
                                              "DAC_READ_SEARCH", "SYS_RESOURCE", "NET_ADMIN", "KILL"]},
        "runAsUser": 0, "runAsNonRoot": False, "readOnlyRootFilesystem": True,
    }  # fmt: skip
    assert m.agent_errors(docs, privileged=True) == ["the agent is not privileged"]
    privileged = render(helm, tmp_path, {"agent": {"privileged": True}})
    assert m.agent_errors(privileged, privileged=True) == []


def test_another_release_name_and_no_agent(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {}, release="sec")
    assert {doc["metadata"]["name"] for doc in docs} == {
        "sec-bindrift-agent",
        "sec-bindrift-worker",
        "sec-bindrift-worker-metrics",
        "sec-bindrift-api",
        "sec-bindrift-config",
    }
    assert m.agent_errors(docs, "sec-bindrift-agent") == []
    assert m.service_errors(docs) == []
    assert m.reference_errors(docs, {"sec-bindrift": {"database-url", "bus-url", "admin-token", "read-token"}}) == []
    without = render(helm, tmp_path, {"agent": {"enabled": False}})
    assert sorted((doc["kind"], doc["metadata"]["name"]) for doc in without) == [
        ("ConfigMap", "bindrift-config"), ("Deployment", "bindrift-api"), ("Deployment", "bindrift-worker"),
        ("Service", "bindrift-api"), ("Service", "bindrift-worker-metrics"), ("ServiceAccount", "bindrift-api"),
        ("ServiceAccount", "bindrift-worker"),
    ]  # fmt: skip


def test_the_chart_refuses_kubernetes_older_than_the_schemas_it_is_checked_against(helm: Path) -> None:
    assert m.KUBE_VERSIONS[0] == "1.27"
    old = helm_run(helm, "template", "bindrift", str(CHART), "--kube-version", "1.26.0")
    assert old.returncode != 0
    assert "chart requires kubeVersion: >=1.27.0-0" in old.stderr
    assert helm_run(helm, "template", "bindrift", str(CHART), "--kube-version", "1.27.0").returncode == 0
