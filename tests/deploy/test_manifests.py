"""deploy/kubernetes: schema-valid, and the objects do what bindrift needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.deploy import manifests as m

from bindrift.config import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
FILES = sorted(DEPLOY.glob("*.yaml"))
OPTIONAL = sorted((DEPLOY / "optional").glob("*.yaml"))


@pytest.fixture(scope="module")
def docs() -> list[m.Doc]:
    return m.load(FILES)


def test_the_expected_objects_are_there(docs: list[m.Doc]) -> None:
    assert sorted((doc["kind"], doc["metadata"]["name"]) for doc in docs) == [
        ("ClusterRole", "bindrift-agent"), ("ClusterRoleBinding", "bindrift-agent"),
        ("ConfigMap", "bindrift-config"), ("DaemonSet", "bindrift-agent"),
        ("Deployment", "bindrift-api"), ("Deployment", "bindrift-worker"), ("Namespace", "bindrift"),
        ("Secret", "bindrift"), ("Service", "bindrift-api"), ("Service", "bindrift-worker-metrics"),
        ("ServiceAccount", "bindrift-agent"),
        ("ServiceAccount", "bindrift-api"), ("ServiceAccount", "bindrift-worker"),
    ]  # fmt: skip
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] in m.NAMESPACED} == {"bindrift"}


@pytest.mark.parametrize("path", [*FILES, *OPTIONAL], ids=lambda path: path.name)
def test_every_manifest_validates_against_the_kubernetes_schemas(path: Path) -> None:
    docs = m.load([path])
    assert docs
    assert m.schema_errors(docs) == []


def test_the_optional_service_monitors_scrape_the_api_with_the_read_token(docs: list[m.Doc]) -> None:
    optional = m.load(OPTIONAL)
    assert sorted(m.by_kind(optional, "ServiceMonitor")) == ["bindrift-api", "bindrift-worker"]
    assert m.monitor_errors([*docs, *optional]) == []
    (endpoint,) = m.one(optional, "ServiceMonitor", "bindrift-api")["spec"]["endpoints"]
    assert endpoint["authorization"]["credentials"] == {"name": "bindrift", "key": "read-token"}


def test_schema_validation_rejects_a_misspelt_field(docs: list[m.Doc]) -> None:
    broken = m.one(docs, "DaemonSet", "bindrift-agent")
    broken = {**broken, "spec": {**broken["spec"], "template": {**broken["spec"]["template"]}}}
    broken["spec"]["template"]["spec"] = {**broken["spec"]["template"]["spec"], "hostPid": True}
    errors = m.schema_errors([broken])
    assert len(errors) == len(m.KUBE_VERSIONS)
    assert all("hostPid" in error for error in errors)


def test_the_agent_daemonset_has_what_the_agent_needs(docs: list[m.Doc]) -> None:
    assert m.agent_errors(docs) == []


def test_the_agent_check_notices_what_is_missing(docs: list[m.Doc]) -> None:
    agent = m.one(docs, "DaemonSet", "bindrift-agent")
    pod = dict(agent["spec"]["template"]["spec"])
    pod.pop("hostPID")
    (container,) = pod["containers"]
    container = {**container, "volumeMounts": [mount for mount in container["volumeMounts"]
                                               if mount["mountPath"] != "/run/containerd"]}  # fmt: skip
    pod["containers"] = [container]
    changed = {**agent, "spec": {**agent["spec"], "template": {**agent["spec"]["template"], "spec": pod}}}
    assert m.agent_errors([changed]) == [
        "hostPID is not set: /proc would not show the containers' processes",
        "/run/containerd is not mounted read-only at its host path: None",
    ]


def test_every_container_runs_a_real_bindrift_command(docs: list[m.Doc]) -> None:
    seen = {}
    for workload, container in m.containers(docs):
        assert "command" not in container, "the image's entrypoint is bindrift"
        assert container["image"] == "localhost/bindrift:0.1.0"
        assert m.command_errors(container["args"], m.env_names(container)) == []
        seen[workload["metadata"]["name"]] = container["args"]
    assert seen == {
        "bindrift-agent": ["watch", "--node-name", "$(NODE_NAME)", "--cluster", "$(BINDRIFT_CLUSTER)",
                           "--bus", "$(BINDRIFT_BUS)", "--spool", "/var/lib/bindrift/spool"],
        "bindrift-worker": ["worker", "--bus", "$(BINDRIFT_BUS)", "--metrics-port", "9464",
                            "--metrics-address", "0.0.0.0"],
        "bindrift-api": ["serve", "--host", "0.0.0.0", "--port", "8080"],
    }  # fmt: skip


def test_the_command_check_rejects_what_bindrift_would_reject() -> None:
    assert m.command_errors(["serve", "--port", "http"], []) == [
        "bindrift serve: Invalid value for '--port': 'http' is not a valid integer."
    ]
    assert m.command_errors(["watch", "--nodename", "x"], []) == [
        "bindrift watch: No such option '--nodename'. Did you mean '--node-name'?"
    ]
    assert m.command_errors(["watch", "--cluster", "$(CLUSTER)"], ["NODE_NAME"]) == [
        "'$(CLUSTER)' refers to undefined $CLUSTER"
    ]
    assert m.command_errors(["agent"], []) == ["bindrift has no sub-command 'agent'"]
    assert m.command_errors(["worker", "--bus", "nats://n:4222", "--dbs", "x"], []) == [
        "bindrift worker: No such option '--dbs'. (Did you mean one of: '--bus', '--db'?)"
    ]


def test_references_resolve_and_services_select_pods(docs: list[m.Doc]) -> None:
    assert m.reference_errors(docs) == []
    assert m.service_errors(docs) == []
    service = m.one(docs, "Service", "bindrift-api")
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    broken = {**service, "spec": {**service["spec"], "selector": {"app.kubernetes.io/component": "ui"}}}
    assert m.service_errors([*docs, broken]) == [
        "Service/bindrift-api: selector {'app.kubernetes.io/component': 'ui'} matches no pods"
    ]


def test_rbac_grants_reading_pods_to_the_agent_only_and_deleting_only_when_opted_in(docs: list[m.Doc]) -> None:
    read = {("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch")}
    assert m.grants(docs) == {"bindrift/bindrift-agent": read}
    assert m.wildcards(docs) == []
    with_delete = [*docs, *m.load(OPTIONAL)]
    assert m.grants(with_delete) == {"bindrift/bindrift-agent": read | {("", "pods", "delete")}}
    assert m.wildcards(with_delete) == []
    tokens = {doc["metadata"]["name"]: doc["automountServiceAccountToken"] for doc in docs
              if doc["kind"] == "ServiceAccount"}  # fmt: skip
    assert tokens == {"bindrift-agent": True, "bindrift-worker": False, "bindrift-api": False}


def test_worker_and_api_run_unprivileged_with_resources(docs: list[m.Doc]) -> None:
    for name in ("bindrift-worker", "bindrift-api"):
        pod = m.one(docs, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                          "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip
        (container,) = pod["containers"]
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                "capabilities": {"drop": ["ALL"]}}  # fmt: skip
        assert set(container["resources"]) == {"requests", "limits"}
    assert m.one(docs, "Deployment", "bindrift-worker")["spec"]["replicas"] == 2


def test_the_api_probes_are_the_apps_health_route(docs: list[m.Doc], tmp_path: Path) -> None:
    from bindrift.sinks.api.app import create_app
    from bindrift.sinks.api.auth import TokenSet
    from bindrift.sinks.store.sql_store import SqlStore

    (container,) = m.one(docs, "Deployment", "bindrift-api")["spec"]["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    store = SqlStore(f"sqlite:///{tmp_path / 'api.db'}")
    try:
        paths = {getattr(route, "path", "") for route in create_app(store, TokenSet({})).routes}
    finally:
        store.close()
    assert {"/healthz", "/metrics"} <= paths


def test_the_configmap_holds_a_valid_bindrift_config(docs: list[m.Doc], tmp_path: Path) -> None:
    config = m.one(docs, "ConfigMap", "bindrift-config")["data"]
    path = tmp_path / "config.toml"
    path.write_text(config["config.toml"])
    settings = load_settings(path)
    assert (settings.database, settings.retention_days, settings.severity) == ("", 90, {})
    assert config["cluster"] == "default"


def test_the_secret_template_fails_closed(docs: list[m.Doc]) -> None:
    data = m.one(docs, "Secret", "bindrift")["stringData"]
    assert set(data) == {"database-url", "bus-url", "admin-token", "read-token"}
    assert data["admin-token"] == data["read-token"] == ""
    assert data["database-url"].startswith("postgresql+psycopg://")
    assert data["bus-url"].startswith("nats://")
    assert all(".invalid:" in data[key] for key in ("database-url", "bus-url"))
