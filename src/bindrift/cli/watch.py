"""`bindrift watch`: the node agent (root)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer

from bindrift.cli.common import DbOption, open_store
from bindrift.cli.serve import TokensOption

if TYPE_CHECKING:
    import uvicorn

    from bindrift.sinks.store.sql_store import SqlStore


def watch(
    db: DbOption = None,
    node_name: Annotated[str, typer.Option(help="Node name in findings (default: the host name).")] = "",
    cluster: Annotated[str, typer.Option(help="Cluster name in findings.")] = "",
    host_path: Annotated[list[str] | None, typer.Option(help="Also watch this host file system (repeatable).")] = None,
    duration: Annotated[float, typer.Option(help="Stop after this many seconds (0: run until stopped).")] = 0.0,
    webhook: Annotated[str, typer.Option(help="POST each finding as JSON to this URL (durable outbox).")] = "",
    syslog: Annotated[str, typer.Option(help="Send each finding to HOST:PORT (RFC 5424; add /tcp for TCP).")] = "",
    metrics_file: Annotated[
        str, typer.Option(help="Write Prometheus metrics to this file (node-exporter textfile collector).")
    ] = "",
    serve: Annotated[
        str, typer.Option(help="Also serve the API and Incident Explorer on HOST:PORT (e.g. 127.0.0.1:8080).")
    ] = "",
    tokens_file: TokensOption = None,
    bus: Annotated[
        str,
        typer.Option(
            envvar="BINDRIFT_BUS",
            help="Distributed mode: publish detections to these NATS servers (nats://host:4222,…).",
        ),
    ] = "",
    spool: Annotated[str, typer.Option(help="With --bus: the disk spool folder.")] = "/var/lib/bindrift/spool",
    spool_max_mb: Annotated[int, typer.Option(min=2, help="With --bus: the spool's size cap in MiB.")] = 64,
    policy: Annotated[str, typer.Option(help="Response policies (TOML): alert, prevent or block per scope.")] = "",
    evidence_dir: Annotated[
        str, typer.Option(help="Evidence store folder (default: evidence/ beside the SQLite database; `off`: none).")
    ] = "",
    evidence_max_mb: Annotated[int, typer.Option(min=1, help="Binaries larger than this are not captured.")] = 64,
    evidence_total_mb: Annotated[int, typer.Option(min=1, help="The evidence store's total cap.")] = 1024,
    evidence_min_free_mb: Annotated[
        int, typer.Option(min=0, help="Nothing is captured that would leave less free space than this.")
    ] = 1024,
    evidence_container_mb_per_hour: Annotated[
        int, typer.Option(min=1, help="Evidence captured from any one container, at most.")
    ] = 256,
    evidence_retention_days: Annotated[
        int, typer.Option(min=1, help="Evidence older than this is purged (at start, then hourly).")
    ] = 30,
    batch_process_events: Annotated[
        bool,
        typer.Option(
            help="Read process events every 10 ms, also when the node is quiet (by default they are read "
            "as they come, and every 2 ms only through exec bursts): processes that exit within 10 ms are "
            "then named by executable only."
        ),
    ] = False,
    process_sensor: Annotated[
        str,
        typer.Option(
            help="Where process context (argv, user, cwd, lineage) comes from: ebpf (captured in the kernel), "
            "procfs (the proc connector, then /proc), or auto: ebpf where it loads, else procfs (the log, "
            "the metrics and each finding say which).",
            click_type=click.Choice(["auto", "ebpf", "procfs"]),
        ),
    ] = "auto",
    prevent_deadline_ms: Annotated[
        int, typer.Option(help="A prevention decision not reached in this time is allowed (fail open).")
    ] = 100,
    max_marks: Annotated[
        int, typer.Option(min=1, help="fanotify marks the agent holds at most (one per writable container mount).")
    ] = 4096,
    state_root: Annotated[
        list[str] | None,
        typer.Option(help="Also discover runc containers under this state folder, as RUNTIME=DIR (repeatable)."),
    ] = None,
) -> None:
    """Watch every running container (podman, containerd, CRI-O, Docker): suspicious binaries written, and
    binaries not in the image executed. Findings go to the store and, as JSON lines, to stdout; with --bus,
    detections go to NATS JetStream and `bindrift worker` stores them."""
    from bindrift.agent.run import AgentSettings, AgentSetupError, LocalOutputs, run_distributed, run_standalone

    settings = AgentSettings(
        node=node_name, cluster=cluster, host_paths=tuple(host_path or ()), duration=duration,
        batch_process_events=batch_process_events, max_marks=max_marks, state_roots=_state_roots(state_root or []),
        process_sensor=process_sensor, metrics_file=metrics_file,
    )  # fmt: skip
    if bus and (db or webhook or syslog or serve):
        raise typer.BadParameter("with --bus the workers store and export findings: --db, --webhook and "
                                 "--syslog belong to `bindrift worker`, --serve to `bindrift serve`")  # fmt: skip
    if bus and (policy or evidence_dir):
        raise typer.BadParameter("--policy and --evidence-dir act on stored findings: not with --bus (yet)")
    try:
        if bus:
            run_distributed(settings, bus, Path(spool), spool_max_mb)
            return
        outputs = LocalOutputs(
            webhook=webhook, syslog=syslog, policy=policy, evidence_dir=evidence_dir, evidence_max_mb=evidence_max_mb,
            evidence_total_mb=evidence_total_mb, evidence_min_free_mb=evidence_min_free_mb,
            evidence_container_mb_per_hour=evidence_container_mb_per_hour,
            evidence_retention_days=evidence_retention_days, prevent_deadline_s=prevent_deadline_ms / 1000,
        )  # fmt: skip
        start_server = None
        if serve:
            from bindrift.cli.serve import serve_in_background

            api_evidence = evidence_dir if evidence_dir != "off" else ""

            def start_server(store: SqlStore) -> uvicorn.Server:
                return serve_in_background(store, serve, tokens_file, api_evidence)

        run_standalone(lambda: open_store(db), settings, outputs, start_server)
    except AgentSetupError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _state_roots(values: list[str]) -> tuple[tuple[str, str], ...]:
    """`RUNTIME=DIR` options as (folder, runtime) pairs."""
    roots = []
    for value in values:
        runtime, sep, folder = value.partition("=")
        if not sep or not runtime or not folder.startswith("/"):
            raise typer.BadParameter(f"--state-root wants RUNTIME=/absolute/folder, not {value!r}")
        roots.append((folder, runtime))
    return tuple(roots)
