"""`bindrift findings list|show|mute|resolve|reopen|export|purge|dead-letters`. Finding and incident ids may be
given by a unique prefix, as git takes a short hash."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from bindrift.cli.common import DbOption, current_user, open_store, parse_when

if TYPE_CHECKING:
    from bindrift.schema.dead_letter import DeadLetter
    from bindrift.schema.finding import Finding, State
    from bindrift.sinks.store.sql_store import SqlStore

app = typer.Typer(help="Explore and triage stored findings.", no_args_is_help=True)


SHORT_ID = 12
CELL = 200  # characters of a workload string shown in a table cell; `show` prints them whole


class ListFormat(StrEnum):
    table = "table"
    json = "json"


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    ocsf = "ocsf"
    scc = "scc"


@app.command("list")
def list_findings(
    db: DbOption = None,
    category: Annotated[str, typer.Option(help="Exact category, e.g. 'Added Binary Executed'.")] = "",
    severity: Annotated[str, typer.Option(help="Minimum severity.")] = "",
    state: Annotated[str, typer.Option(help="active, muted or resolved.")] = "",
    cluster: str = "",
    namespace: str = "",
    pod: str = "",
    image: Annotated[str, typer.Option(help="Image repository, repository:tag or full reference.")] = "",
    node: str = "",
    incident: Annotated[str, typer.Option(help="Findings of one incident.")] = "",
    since: Annotated[str, typer.Option(help="Last seen within, e.g. 24h, or since an ISO time.")] = "",
    text: Annotated[str, typer.Option(help="Free text in path, arguments, names and summary.")] = "",
    sort: Annotated[
        str, typer.Option(help="last_seen, first_seen, severity, count, category; '-' for descending.")
    ] = "-last_seen",
    limit: int = 50,
    offset: int = 0,
    output_format: Annotated[ListFormat, typer.Option("--format")] = ListFormat.table,
) -> None:
    """List findings, most recent first."""
    from bindrift.schema.severity import parse_severity
    from bindrift.sinks.store.sql_store import FindingFilter

    try:
        store = open_store(db)
        try:
            where = FindingFilter(
                category=category, min_severity=parse_severity(severity) if severity else None, state=state,
                cluster=cluster, namespace=namespace, pod=pod, image=image, node=node,
                incident_id=_resolve(store, incident, "incident") if incident else "",
                since=parse_when(since, future=False) if since else None, text=text, sort=sort, limit=limit,
                offset=offset,
            )  # fmt: skip
            found = store.list_findings(where)
            total = store.count_findings(where)
        finally:
            store.close()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if output_format is ListFormat.json:
        _json_lines(found)
        return
    _table(found, total)


@app.command()
def show(finding_id: str, db: DbOption = None, output_format: Annotated[ListFormat, typer.Option("--format")]
         = ListFormat.table) -> None:  # fmt: skip
    """Everything about one finding (id or unique prefix): context, process, writer, file, evidence, response."""
    store = open_store(db)
    try:
        finding = store.get_finding(_resolve(store, finding_id))
    finally:
        store.close()
    if finding is None:
        raise typer.Exit(2)
    if output_format is ListFormat.json:
        _json_lines([finding])
        return
    from bindrift.cli.finding_view import render_finding

    render_finding(finding)


@app.command("dead-letters")
def dead_letters(
    db: DbOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    output_format: Annotated[ListFormat, typer.Option("--format")] = ListFormat.table,
) -> None:
    """Detections the findings stage could not store and set aside (newest first): where they came from, how
    many times they were tried and why they were refused. `--format json` gives each with its detection (the
    encoded message, base64, its first 64 KiB); exit 1 when there are any."""
    store = open_store(db)
    try:
        letters, total = store.dead_letters(limit)
    finally:
        store.close()
    if output_format is ListFormat.json:
        import msgspec

        for letter in letters:
            sys.stdout.buffer.write(msgspec.json.encode(letter) + b"\n")
    else:
        _dead_letter_table(letters, total)
    if total:
        raise typer.Exit(1)


def _dead_letter_table(letters: list[DeadLetter], total: int) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from bindrift.visible_text import visible

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for column in ("set aside (UTC)", "source", "node", "tries", "bytes"):
        table.add_column(column, no_wrap=True, justify="right" if column in ("tries", "bytes") else "left")
    table.add_column("message, reason", overflow="fold")
    for letter in letters:
        table.add_row(letter.at.strftime("%Y-%m-%d %H:%M:%S"), letter.source, visible(letter.node, 64),
                      str(letter.deliveries), str(letter.size),
                      visible(letter.message_id, 80) + "\n" + visible(letter.error, CELL))  # fmt: skip
    console = Console(highlight=False)
    console.print(table)
    console.print(f"{len(letters)} of {total} dead letter(s)")


def _resolve(store: SqlStore, prefix: str, kind: Literal["finding", "incident"] = "finding") -> str:
    """The one id starting with `prefix`; exit 2 saying why when none or several do."""
    from bindrift.sinks.store.incident_triage import AmbiguousIdError, resolve_id
    from bindrift.visible_text import visible

    try:
        found = resolve_id(store, prefix, kind)
    except AmbiguousIdError as exc:
        typer.echo(visible(str(exc)), err=True)
        raise typer.Exit(2) from exc
    if found is None:
        typer.echo(f"no {kind} {visible(prefix, 80)}", err=True)
        raise typer.Exit(2)
    return found


def _change(finding_id: str, state: State, reason: str, by: str, db: str | None) -> None:
    store = open_store(db)
    try:
        full_id = _resolve(store, finding_id)
        changed = store.set_state(full_id, state, by or current_user(), reason)
    finally:
        store.close()
    if changed is None:
        typer.echo(f"no finding {full_id}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{full_id}: {state}")


Reason = Annotated[str, typer.Option(help="Why (recorded with the change).")]
By = Annotated[str, typer.Option(help="Who (default: the current user).")]


@app.command()
def mute(finding_id: str, reason: Reason, by: By = "", db: DbOption = None) -> None:
    """Mute a finding: it stays stored and counted but is not alerted on."""
    _change(finding_id, "muted", reason, by, db)


@app.command()
def resolve(finding_id: str, reason: Reason, by: By = "", db: DbOption = None) -> None:
    """Mark a finding resolved."""
    _change(finding_id, "resolved", reason, by, db)


@app.command()
def reopen(finding_id: str, reason: Reason, by: By = "", db: DbOption = None) -> None:
    """Make a muted or resolved finding active again."""
    _change(finding_id, "active", reason, by, db)


@app.command()
def export(
    db: DbOption = None,
    output_format: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.jsonl,
    since: Annotated[str, typer.Option(help="Last seen within, e.g. 24h.")] = "",
    limit: int = 10_000,
    scc_parent: Annotated[str, typer.Option(help="SCC source, organizations/ORG/sources/SOURCE.")] = "",
    gcp_project: Annotated[str, typer.Option(help="GCP project: GKE full resource names in SCC.")] = "",
    gcp_location: Annotated[str, typer.Option(help="The clusters' region or zone (with --gcp-project).")] = "",
    explorer_url: Annotated[str, typer.Option(help="The Explorer's address: SCC externalUri.")] = "",
) -> None:
    """Write findings to stdout as JSON Lines: bindrift's model, OCSF 1.8 Detection Findings, or SCC v1 Findings
    (its options default to the settings' [scc] table)."""
    import msgspec

    from bindrift.config import load_settings
    from bindrift.sinks.store.sql_store import FindingFilter

    store = open_store(db)
    try:
        found = store.list_findings(FindingFilter(since=parse_when(since, future=False) if since else None,
                                                  limit=limit))  # fmt: skip
    finally:
        store.close()
    out = sys.stdout.buffer
    if output_format is ExportFormat.jsonl:
        from bindrift.sinks.exports.jsonl import write_jsonl

        write_jsonl(found, out)
        return
    from bindrift.sinks.exports.ocsf import to_ocsf
    from bindrift.sinks.exports.scc import to_scc

    scc = load_settings().scc
    given = {"parent": scc_parent, "project": gcp_project, "location": gcp_location, "explorer_url": explorer_url}
    scc = msgspec.structs.replace(scc, **{k: v for k, v in given.items() if v})
    for finding in found:
        body = to_ocsf(finding) if output_format is ExportFormat.ocsf else to_scc(finding, scc)
        out.write(msgspec.json.encode(body) + b"\n")
    out.flush()


@app.command()
def purge(
    db: DbOption = None,
    older_than: Annotated[str, typer.Option(help="Age, e.g. 90d (default: retention_days of the config).")] = "",
) -> None:
    """Retention: delete findings last seen before the cut-off."""
    from bindrift.config import load_settings

    cutoff = parse_when(older_than or f"{load_settings().retention_days}d", future=False)
    from bindrift.sinks.store.incident_triage import purge_triage

    store = open_store(db)
    try:
        removed = store.purge(cutoff)
        purge_triage(store)
    finally:
        store.close()
    typer.echo(f"{removed} finding(s) last seen before {cutoff.isoformat()} removed")


def _json_lines(found: list[Finding]) -> None:
    from bindrift.sinks.exports.jsonl import write_jsonl

    write_jsonl(found, sys.stdout.buffer)


def _table(found: list[Finding], total: int) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from bindrift.sinks.scan_report.table import STYLES
    from bindrift.visible_text import visible

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for column in ("id", "last seen (UTC)", "severity", "state", "count"):  # never wrapped
        table.add_column(column, no_wrap=True, justify="right" if column == "count" else "left")
    table.add_column("category, where, file", overflow="fold")
    for f in found:
        r = f.resource
        where = "/".join(x for x in (r.cluster, r.namespace, r.pod, r.container_name) if x) or f"host {r.node}"
        what = Text(f.category, style="bold")
        what.append("\n" + visible(where, CELL) + "\n" + visible(f.file.path, CELL))
        seen = f.last_seen.strftime("%Y-%m-%d %H:%M")
        table.add_row(f.id[:SHORT_ID], seen, Text(f.severity, style=STYLES[f.severity]), f.state, str(f.count), what)
    console = Console(highlight=False)
    console.print(table)
    console.print(f"{len(found)} of {total} finding(s)")
