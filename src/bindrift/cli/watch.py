"""`bindrift watch`: the node agent (root)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, cast

import click
import typer

from bindrift.cli.common import DbOption, open_store
from bindrift.cli.serve import TokensOption


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
    from datetime import timedelta

    from bindrift.agent.loop import Agent, print_finding
    from bindrift.agent.outputs import AgentOutputs
    from bindrift.agent.response import build_response
    from bindrift.config import load_settings
    from bindrift.response.evidence import EvidenceBudget
    from bindrift.sensors.ebpf.feed import Mode
    from bindrift.sensors.ebpf.sensor import EbpfUnavailableError

    roots = _state_roots(state_root or [])
    if bus:
        if db or webhook or syslog or serve:
            raise typer.BadParameter("with --bus the workers store and export findings: --db, --webhook and "
                                     "--syslog belong to `bindrift worker`, --serve to `bindrift serve`")  # fmt: skip
        if policy or evidence_dir:
            raise typer.BadParameter("--policy and --evidence-dir act on stored findings: not with --bus (yet)")
        _watch_distributed(bus, Path(spool), spool_max_mb, node_name, cluster, tuple(host_path or ()), duration,
                           metrics_file, batch_process_events, max_marks, roots, process_sensor)  # fmt: skip
        return
    store = open_store(db)
    try:
        outputs = AgentOutputs(store, webhook=webhook, syslog=syslog, metrics_file=metrics_file, echo=print_finding)
    except ValueError as exc:
        store.close()
        raise typer.BadParameter(str(exc)) from exc
    server = None
    if serve:
        from bindrift.cli.serve import serve_in_background

        server = serve_in_background(store, serve, tokens_file, evidence_dir if evidence_dir != "off" else "")
    try:
        agent = Agent(store, node=node_name, cluster=cluster, host_paths=tuple(host_path or ()), outputs=outputs,
                      batch_process_events=batch_process_events, max_marks=max_marks, state_roots=roots,
                      process_sensor=cast(Mode, process_sensor))  # fmt: skip
    except EbpfUnavailableError as exc:
        store.close()
        raise typer.BadParameter(f"--process-sensor ebpf: {exc}") from exc
    try:
        response = build_response(
            store, agent._resource(None), policy_file=policy, evidence_dir=evidence_dir,
            evidence_budget=EvidenceBudget(
                max_bytes=evidence_max_mb << 20, max_total_bytes=evidence_total_mb << 20,
                min_free_bytes=evidence_min_free_mb << 20,
                container_bytes_per_hour=evidence_container_mb_per_hour << 20,
                retention=timedelta(days=evidence_retention_days),
            ),
            on_evidence_skip=lambda reason: outputs.metrics.record_drop("evidence", reason),
            deadline=prevent_deadline_ms / 1000,
            severity=load_settings().severity,
        )  # fmt: skip
    except (ValueError, OSError) as exc:
        agent.close()
        store.close()
        raise typer.BadParameter(str(exc)) from exc
    agent.attach_response(response)

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print("bindrift: agent started, watching containers of podman, containerd, CRI-O and Docker", file=sys.stderr,
          flush=True)  # fmt: skip
    try:
        agent.run(duration)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.should_exit = True
        agent.close()
        outputs.write_metrics()
        store.close()


def _watch_distributed(bus: str, spool: Path, spool_max_mb: int, node: str, cluster: str, host_paths: tuple[str, ...],
                       duration: float, metrics_file: str, batch_process_events: bool, max_marks: int,
                       roots: tuple[tuple[str, str], ...], process_sensor: str) -> None:  # fmt: skip
    """The agent publishing to the bus through its disk spool."""
    import socket

    from bindrift.agent.loop import Agent
    from bindrift.bus.publisher import BusPublisher
    from bindrift.bus.spool import Spool
    from bindrift.bus.stream import parse_servers
    from bindrift.sensors.ebpf.feed import Mode

    try:
        servers = parse_servers(bus)
        spooled = Spool(spool, max_bytes=spool_max_mb << 20)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    node = node or socket.gethostname()
    publisher = BusPublisher(servers, spooled, node, metrics_file=metrics_file)
    agent = Agent(None, node=node, cluster=cluster, host_paths=host_paths, publish=publisher.publish,
                  batch_process_events=batch_process_events, max_marks=max_marks, state_roots=roots,
                  process_sensor=cast(Mode, process_sensor))  # fmt: skip

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"bindrift: agent started, publishing to {','.join(servers)}", file=sys.stderr, flush=True)
    try:
        agent.run(duration)
    except KeyboardInterrupt:
        pass
    finally:
        agent.close()
        publisher.close()


def _state_roots(values: list[str]) -> tuple[tuple[str, str], ...]:
    """`RUNTIME=DIR` options as (folder, runtime) pairs."""
    roots = []
    for value in values:
        runtime, sep, folder = value.partition("=")
        if not sep or not runtime or not folder.startswith("/"):
            raise typer.BadParameter(f"--state-root wants RUNTIME=/absolute/folder, not {value!r}")
        roots.append((folder, runtime))
    return tuple(roots)
