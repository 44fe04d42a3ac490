"""Checks shared by the plain manifests and the rendered Helm chart: Kubernetes schema validation and what
the objects must do for bindrift (agent privileges and mounts, real commands, Services, RBAC)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import typer.main
import yaml
from kubernetes_validate.utils import latest_version

from bindrift.cli.main import app

Doc = dict[str, Any]

# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest schemas shipped.
KUBE_VERSIONS = ("1.27", latest_version())
NAMESPACED = {"ServiceAccount", "ConfigMap", "Secret", "Service", "DaemonSet", "Deployment", "ServiceMonitor"}
# Prometheus Operator objects are checked with its own schemas (tests/deploy/fetch-monitoring-schemas.sh).
OPERATOR_API = "monitoring.coreos.com/v1"
PROJECT = Path(__file__).resolve().parents[2]
WORKLOADS = {"DaemonSet", "Deployment"}

# Host paths the agent reads, read-only, at the same path (runc state, containerd, CRI-O, Docker; storage).
RUNTIME_STATE = ("/run/runc", "/run/containerd", "/run/crio", "/run/docker")
CONTAINER_STORAGE = ("/var/lib/containerd", "/var/lib/containers", "/var/lib/docker")
SPOOL = "/var/lib/bindrift/spool"

ENV_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def load(paths: Iterable[Path]) -> list[Doc]:
    """Every non-empty YAML document of `paths`."""
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def parse(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def schema_errors(docs: Iterable[Doc]) -> list[str]:
    """Strict validation against the Kubernetes JSON schemas of every version in KUBE_VERSIONS, and of
    Prometheus Operator objects against the operator's; a kind without a schema is an error too."""
    docs = list(docs)
    operator = [doc for doc in docs if doc.get("apiVersion") == OPERATOR_API]
    errors = operator_schema_errors(operator) if operator else []
    for doc in docs:
        if doc.get("apiVersion") == OPERATOR_API:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(part) for part in exc.path)
                errors.append(f"{doc['kind']}/{doc['metadata']['name']} ({version}): {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                errors.append(exc.message)
    return errors


def operator_schema_errors(docs: list[Doc]) -> list[str]:
    """`docs` checked by the schemas of @kubernetes-models/prometheus-operator (fetched into .cache)."""
    dest = PROJECT / ".cache" / "monitoring-schemas"
    fetch = PROJECT / "tests" / "deploy" / "fetch-monitoring-schemas.sh"
    subprocess.run(["bash", str(fetch), str(dest)], check=True, capture_output=True, timeout=300)
    result = subprocess.run(["node", str(dest / "validate.mjs")], input=json.dumps(docs), capture_output=True,
                            text=True, check=True, timeout=60)  # fmt: skip
    errors: list[str] = json.loads(result.stdout)
    return errors


def monitor_errors(docs: list[Doc], secret_keys: dict[str, set[str]] | None = None) -> list[str]:
    """ServiceMonitors selecting no Service, naming a port the Service lacks, or a token key of no Secret."""
    if secret_keys is None:
        secret_keys = {name: set(doc["stringData"]) for name, doc in by_kind(docs, "Secret").items()}
    errors = []
    for name, monitor in by_kind(docs, "ServiceMonitor").items():
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [doc for doc in by_kind(docs, "Service").values()
                    if doc["metadata"]["namespace"] == monitor["metadata"]["namespace"]
                    and selector.items() <= doc["metadata"].get("labels", {}).items()]  # fmt: skip
        if not services:
            errors.append(f"ServiceMonitor/{name}: selector {selector} matches no Service")
        for endpoint in monitor["spec"]["endpoints"]:
            errors += [f"ServiceMonitor/{name}: Service {service['metadata']['name']} has no port {endpoint['port']}"
                       for service in services
                       if endpoint["port"] not in {p.get("name") for p in service["spec"]["ports"]}]  # fmt: skip
            credentials = endpoint.get("authorization", {}).get("credentials")
            if credentials and credentials["key"] not in secret_keys.get(credentials["name"], set()):
                errors.append(f"ServiceMonitor/{name}: no Secret key {credentials['name']}/{credentials['key']}")
    return errors


def by_kind(docs: Iterable[Doc], kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def one(docs: Iterable[Doc], kind: str, name: str) -> Doc:
    found = by_kind(docs, kind)
    assert name in found, f"no {kind} {name}; have {sorted(found)}"
    return found[name]


def containers(docs: Iterable[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, container) for every container of every DaemonSet and Deployment."""
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield doc, container


def commands() -> dict[str, click.Command]:
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    return dict(group.commands)


def command_errors(args: list[str], env: Iterable[str]) -> list[str]:
    """Why `bindrift ARGS` would not parse: an unknown sub-command or option, a bad value, or a `$(VAR)`
    that the container does not define (Kubernetes would pass it literally)."""
    defined = set(env)
    errors = [f"{arg!r} refers to undefined ${name}" for arg in args for name in ENV_REF.findall(arg)
              if name not in defined]  # fmt: skip
    if not args:
        return [*errors, "no sub-command"]
    name, rest = args[0], [ENV_REF.sub("value", arg) for arg in args[1:]]
    command = commands().get(name)
    if command is None:
        return [*errors, f"bindrift has no sub-command {name!r}"]
    try:
        command.make_context(name, rest)
    except click.ClickException as exc:
        errors.append(f"bindrift {name}: {exc.format_message()}")
    return errors


def env_names(container: Doc) -> list[str]:
    return [item["name"] for item in container.get("env", [])]


def reference_errors(docs: list[Doc], secret_keys: dict[str, set[str]] | None = None) -> list[str]:
    """Pods that name a ServiceAccount, ConfigMap key or Secret key, volume or port that is not there.
    `secret_keys` are the keys of Secrets made outside (by default those of the Secrets in `docs`)."""
    accounts = by_kind(docs, "ServiceAccount")
    maps = by_kind(docs, "ConfigMap")
    if secret_keys is None:
        secret_keys = {name: set(doc["stringData"]) for name, doc in by_kind(docs, "Secret").items()}
    errors = []
    for workload in docs:
        if workload["kind"] not in WORKLOADS:
            continue
        pod = workload["spec"]["template"]["spec"]
        label = f"{workload['kind']}/{workload['metadata']['name']}"
        if pod.get("serviceAccountName") not in accounts:
            errors.append(f"{label}: no ServiceAccount {pod.get('serviceAccountName')}")
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        for volume in volumes.values():
            if "configMap" in volume:
                config = maps.get(volume["configMap"]["name"], {"data": {}})
                missing = [item["key"] for item in volume["configMap"].get("items", [])
                           if item["key"] not in config["data"]]  # fmt: skip
                errors += [f"{label}: volume {volume['name']}: no key {key}" for key in missing]
        for container in pod["containers"]:
            errors += [f"{label}: mount of undefined volume {mount['name']}"
                       for mount in container.get("volumeMounts", []) if mount["name"] not in volumes]  # fmt: skip
            for item in container.get("env", []):
                source = item.get("valueFrom", {})
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    if ref["key"] not in maps.get(ref["name"], {"data": {}})["data"]:
                        errors.append(f"{label}: env {item['name']}: no ConfigMap key {ref['name']}/{ref['key']}")
                if "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    if ref["key"] not in secret_keys.get(ref["name"], set()):
                        errors.append(f"{label}: env {item['name']}: no Secret key {ref['name']}/{ref['key']}")
            ports = {port.get("name") for port in container.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in ports:
                    errors.append(f"{label}: {probe} names no declared port {port}")
    return errors


def service_errors(docs: list[Doc]) -> list[str]:
    """Services whose selector matches no workload's pod labels, or whose named targetPort those pods lack."""
    errors = []
    for service in by_kind(docs, "Service").values():
        selector = service["spec"]["selector"]
        targets = [doc for doc in docs if doc["kind"] in WORKLOADS
                   and doc["metadata"]["namespace"] == service["metadata"]["namespace"]
                   and selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()]  # fmt: skip
        if not targets:
            errors.append(f"Service/{service['metadata']['name']}: selector {selector} matches no pods")
        for target in targets:
            ports = {port.get("name") for c in target["spec"]["template"]["spec"]["containers"]
                     for port in c.get("ports", [])}  # fmt: skip
            name = f"Service/{service['metadata']['name']}"
            errors += [f"{name}: no port {p['targetPort']} on {target['metadata']['name']}"
                       for p in service["spec"]["ports"]
                       if isinstance(p["targetPort"], str) and p["targetPort"] not in ports]  # fmt: skip
    return errors


def grants(docs: list[Doc]) -> dict[str, set[tuple[str, str, str]]]:
    """(apiGroup, resource, verb) granted to each ServiceAccount (namespace/name) by ClusterRoleBindings."""
    roles = by_kind(docs, "ClusterRole")
    result: dict[str, set[tuple[str, str, str]]] = {}
    for binding in by_kind(docs, "ClusterRoleBinding").values():
        rules = roles[binding["roleRef"]["name"]]["rules"]
        triples = {(group, resource, verb) for rule in rules for group in rule["apiGroups"]
                   for resource in rule["resources"] for verb in rule["verbs"]}  # fmt: skip
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            result.setdefault(f"{subject['namespace']}/{subject['name']}", set()).update(triples)
    return result


def wildcards(docs: list[Doc]) -> list[str]:
    return [f"{doc['kind']}/{doc['metadata']['name']}: {rule}" for doc in docs
            if doc["kind"] in ("ClusterRole", "Role") for rule in doc["rules"]
            if "*" in [*rule.get("apiGroups", []), *rule.get("resources", []), *rule.get("verbs", [])]]  # fmt: skip


def host_mounts(pod: Doc, container: Doc) -> dict[str, tuple[str, bool]]:
    """mountPath -> (host path, read-only) of the container's hostPath mounts."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    return {mount["mountPath"]: (volumes[mount["name"]]["hostPath"]["path"], bool(mount.get("readOnly")))
            for mount in container.get("volumeMounts", []) if "hostPath" in volumes[mount["name"]]}  # fmt: skip


# What the agent needs, one by one (docs/deployment.md): the eBPF sensor (BPF, PERFMON), fanotify marks
# (SYS_ADMIN), other processes' /proc (SYS_PTRACE), runtime state (DAC_READ_SEARCH), descriptor limits
# (SYS_RESOURCE), the proc connector fallback (NET_ADMIN), kill responses (KILL).
AGENT_CAPABILITIES = {
    "BPF",
    "PERFMON",
    "SYS_ADMIN",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
    "SYS_RESOURCE",
    "NET_ADMIN",
    "KILL",
}


def agent_errors(docs: list[Doc], name: str = "bindrift-agent", *, privileged: bool = False) -> list[str]:
    """What the node agent's DaemonSet lacks: the host's PID and network namespaces, root with exactly the
    capabilities of docs/deployment.md (or, opted in, privileged), tolerations of every taint, the runtime
    state and storage read-only at their host paths, a writable spool on the host, and nothing mounted over /proc."""
    daemonset = one(docs, "DaemonSet", name)
    pod = daemonset["spec"]["template"]["spec"]
    errors = []
    if pod.get("hostPID") is not True:
        errors.append("hostPID is not set: /proc would not show the containers' processes")
    if pod.get("hostNetwork") is not True:
        errors.append("hostNetwork is not set: the proc connector answers only in the host's network namespace")
    if pod.get("dnsPolicy") != "ClusterFirstWithHostNet":
        errors.append("dnsPolicy must be ClusterFirstWithHostNet to resolve Services with hostNetwork")
    if {"operator": "Exists"} not in pod.get("tolerations", []):
        errors.append("the agent does not tolerate every taint")
    (container,) = pod["containers"]
    security = container.get("securityContext", {})
    if security.get("runAsUser") != 0 or security.get("runAsNonRoot") is not False:
        errors.append(f"the agent must run as root: {security}")
    if privileged and security.get("privileged") is not True:
        errors.append("the agent is not privileged")
    if not privileged:
        capabilities = security.get("capabilities", {})
        added = set(capabilities.get("add", []))
        if security.get("privileged") is not False or added != AGENT_CAPABILITIES:
            missing, extra = sorted(AGENT_CAPABILITIES - added), sorted(added - AGENT_CAPABILITIES)
            errors.append(f"capability mode: privileged={security.get('privileged')}, missing {missing}, extra {extra}")
        if capabilities.get("drop") != ["ALL"]:
            errors.append("the agent keeps the runtime's default capabilities: drop ALL first")
    mounts = host_mounts(pod, container)
    for path in (*RUNTIME_STATE, *CONTAINER_STORAGE):
        if mounts.get(path) != (path, True):
            errors.append(f"{path} is not mounted read-only at its host path: {mounts.get(path)}")
    if mounts.get(SPOOL) != (SPOOL, False):
        errors.append(f"the spool {SPOOL} is not a writable host folder: {mounts.get(SPOOL)}")
    over_proc = [mount["mountPath"] for mount in container.get("volumeMounts", [])
                 if mount["mountPath"] == "/proc" or mount["mountPath"].startswith("/proc/")]  # fmt: skip
    if over_proc:
        errors.append(f"mounts over the host PID namespace's /proc: {over_proc}")
    if not ({"requests", "limits"} <= set(container.get("resources", {}))):
        errors.append("the agent has no resource requests and limits")
    return errors
