"""Response steps with the real names filled in, for the runtime that runs the container.

Every value that comes from the workload (paths, names, ids) is shell-quoted: a file named
`$(reboot)` must not turn a copied command into an attack on the responder.
"""

from __future__ import annotations

import posixpath
from shlex import quote

from bindrift.schema.finding import Finding, ResponseStep

DRIFT = ("Added Binary Executed", "Modified Binary Executed", "Added Library Loaded")


def response_steps(finding: Finding) -> list[ResponseStep]:
    """What a responder does next, in order: preserve, inspect, check, contain, fix."""
    r, path = finding.resource, finding.file.path
    evidence_dir = f"./bindrift-evidence/{finding.id}"
    steps: list[ResponseStep] = []
    if r.namespace and r.pod:
        ns, pod, ctr = quote(r.namespace), quote(r.pod), quote(r.container_name or r.container_id)
        # The cluster is the kubectl context of that name, when the finding says which cluster.
        kubectl = f"kubectl --context {quote(r.cluster)} -n {ns}" if r.cluster else f"kubectl -n {ns}"
        steps += [
            ResponseStep("Copy the binary out for analysis",
                         f"mkdir -p {quote(evidence_dir)} && {kubectl} cp {quote(f'{r.pod}:{path}')} "
                         f"{quote(evidence_dir + '/' + posixpath.basename(path))} -c {ctr}"),
            ResponseStep("Inspect the container", f"{kubectl} exec {pod} -c {ctr} -- ls -la "
                                                  f"{quote(posixpath.dirname(path) or '/')}"),
            ResponseStep("Look at the container from the node", f"crictl inspect {quote(r.container_id)}",
                         note=f"on node {r.node}" if r.node else ""),
            ResponseStep("Stop the workload: delete the pod", f"{kubectl} delete pod {pod}"),
        ]  # fmt: skip
    elif r.container_id:
        tool = {"podman": "podman", "docker": "docker"}.get(r.runtime)
        cid = quote(r.container_id)
        if tool:
            steps += [
                ResponseStep("Copy the binary out for analysis", f"mkdir -p {quote(evidence_dir)} && {tool} cp "
                             f"{quote(f'{r.container_id}:{path}')} {quote(evidence_dir)}/"),
                ResponseStep(
                    "Inspect the container", f"{tool} exec {cid} ls -la {quote(posixpath.dirname(path) or '/')}"
                ),
                ResponseStep("Stop the container", f"{tool} stop {cid}"),
            ]  # fmt: skip
        else:
            namespace = quote(r.namespace or "default")
            steps += [
                ResponseStep("Inspect the container", f"ctr -n {namespace} containers info {cid}"),
                ResponseStep("Stop the container", f"ctr -n {namespace} task kill {cid}"),
            ]
    else:
        steps += [
            ResponseStep("Copy the binary out for analysis", f"mkdir -p {quote(evidence_dir)} && cp -p -- "
                         f"{quote(path)} {quote(evidence_dir)}/", note=f"on node {r.node}" if r.node else ""),
        ]  # fmt: skip
    if finding.file.sha256:
        steps.append(ResponseStep("Check the hash against threat intelligence", note=finding.indicator.virustotal_url
                                  if finding.indicator else ""))  # fmt: skip
    if finding.writer is not None:
        steps.append(
            ResponseStep(
                "Find how the writer process got there: it is likely malicious",
                note=f"pid {finding.writer.pid} {finding.writer.exe or finding.writer.comm}",
            )
        )
    steps.append(ResponseStep("Review the other findings on the same container",
                              f"bindrift findings list --incident {quote(finding.incident_id)}"
                              if finding.incident_id else "bindrift findings list"))  # fmt: skip
    if finding.category in DRIFT:
        steps.append(
            ResponseStep(
                "If the binary belongs in the image, rebuild the image with it",
                note="drift from an intended change then disappears",
            )
        )
    return steps
