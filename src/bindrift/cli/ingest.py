"""`bindrift ingest`: add bindrift's analysis to another sensor's events (Falco, Tetragon, Tracee, auditd)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from bindrift.cli.common import DbOption, open_store
from bindrift.cli.serve import TokensOption


class Source(StrEnum):
    """The tools `--from` accepts."""

    falco = "falco"
    tetragon = "tetragon"
    tracee = "tracee"
    auditd = "auditd"


def _listen_address(text: str) -> tuple[str, int]:
    """HOST:PORT, or a bare PORT on the loopback address."""
    host, _, port = text.rpartition(":")
    host = host or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def ingest(
    source: Annotated[Source, typer.Option("--from", help="The tool that wrote the events.")],
    input_file: Annotated[str, typer.Argument(metavar="[FILE|-]", help="Events file (default: stdin).")] = "-",
    db: DbOption = None,
    listen: Annotated[
        str, typer.Option(help="Serve HTTP on [HOST:]PORT instead (Falco http_output, Falcosidekick webhook).")
    ] = "",
    tokens_file: TokensOption = None,
    node_name: Annotated[str, typer.Option(help="Node name for events that do not name theirs.")] = "",
    cluster: Annotated[str, typer.Option(help="Cluster name in findings.")] = "",
    bus: Annotated[
        str,
        typer.Option(envvar="BINDRIFT_BUS", help="Publish detections to these NATS servers (nats://host:4222,…)."),
    ] = "",
    spool: Annotated[str, typer.Option(help="With --bus: the disk spool folder.")] = "/var/lib/bindrift/ingest-spool",
    spool_max_mb: Annotated[int, typer.Option(min=2, help="With --bus: the spool's size cap in MiB.")] = 64,
    check: Annotated[bool, typer.Option(help="Only read and count the lines (no analysis, no store).")] = False,
    metrics_file: Annotated[str, typer.Option(help="Write Prometheus metrics to this file at the end.")] = "",
    max_request_lines: Annotated[int, typer.Option(min=1, help="HTTP: lines a request may hold.")] = 5000,
    max_request_mb: Annotated[float, typer.Option(min=0.001, help="HTTP: bytes a request may hold, in MiB.")] = 4.0,
    rate: Annotated[float, typer.Option(min=0.001, help="HTTP: lines a second per token.")] = 20_000.0,
) -> None:
    """Read another sensor's exec and write events (JSON lines, or audit log lines) from a file, stdin or
    HTTP; files reachable on this node get bindrift's full analysis, the rest a finding from the event alone
    when the tool says the binary drifted. Findings go to the store and, as JSON lines, to stdout (with --bus,
    detections go to NATS JetStream and `bindrift worker` stores them). Exit status 1 when no line could be
    read, 2 when the input is another tool's output."""
    from bindrift.ingest.command import IngestOptions, run_ingest

    if bus and db:
        raise typer.BadParameter("with --bus the workers store the findings: --db belongs to `bindrift worker`")
    if check and (listen or bus):
        raise typer.BadParameter("--check reads a file or stdin and only counts: not with --listen or --bus")
    address = _listen_address(listen) if listen else None
    options = IngestOptions(
        source=source.value, input_file=input_file, store=None if bus or check else open_store(db), listen=address,
        node=node_name, cluster=cluster, bus=bus, spool=spool, spool_max_mb=spool_max_mb, check=check,
        metrics_file=metrics_file, tokens_file=tokens_file, max_request_lines=max_request_lines,
        max_request_bytes=int(max_request_mb * (1 << 20)), rate=rate,
    )  # fmt: skip
    try:
        status = run_ingest(options)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    raise typer.Exit(status)
