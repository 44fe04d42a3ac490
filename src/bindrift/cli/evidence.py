"""`bindrift evidence list|get|purge`: binaries captured at detection time (content-addressed, verified)."""

from __future__ import annotations

from typing import Annotated

import typer

from bindrift.cli.common import DbOption, open_store

app = typer.Typer(help="Binaries captured as evidence when findings were raised.", no_args_is_help=True)
DirOption = Annotated[str, typer.Option(help="Evidence store folder (default: evidence/ beside the SQLite database).")]


@app.command("list")
def list_evidence(
    finding: Annotated[str, typer.Option(help="Only this finding's evidence.")] = "",
    limit: int = 100,
    db: DbOption = None,
) -> None:
    """Evidence records, newest first: id, finding, sha256, size, capture time, path and container."""
    from bindrift.visible_text import visible

    store = open_store(db)
    try:
        records = store.list_evidence(finding, limit)
    finally:
        store.close()
    for r in records:
        where = r.resource.container_name or r.resource.container_id[:12] or r.resource.node
        typer.echo(f"{r.id} {r.finding_id} {r.sha256} {r.size} {r.captured_at.isoformat()} {visible(r.path)} "
                   f"{visible(where)}")  # fmt: skip


@app.command()
def get(
    evidence_id: str,
    output: Annotated[str, typer.Option("-o", "--output", help="Write the binary here (mode 0400, new file).")],
    evidence_dir: DirOption = "",
    db: DbOption = None,
) -> None:
    """Write a captured binary to a file, after checking it still has its recorded SHA-256."""
    from bindrift.agent.response import default_evidence_dir
    from bindrift.response.evidence import EvidenceError, EvidenceStore

    store = open_store(db)
    try:
        record = EvidenceStore(evidence_dir or default_evidence_dir(store), store).export(evidence_id, output)
    except EvidenceError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    except FileExistsError as exc:
        typer.echo(f"{output} exists: not overwritten", err=True)
        raise typer.Exit(2) from exc
    finally:
        store.close()
    typer.echo(f"{output}: {record.size} bytes, sha256 {record.sha256} (verified)")


@app.command()
def purge(
    days: Annotated[int, typer.Option(help="Delete evidence captured more than this many days ago.")] = 30,
    evidence_dir: DirOption = "",
    db: DbOption = None,
) -> None:
    """Retention: delete old evidence records and the copies no record uses any more."""
    from datetime import timedelta

    from bindrift.agent.response import default_evidence_dir
    from bindrift.response.evidence import EvidenceBudget, EvidenceStore

    store = open_store(db)
    try:
        budget = EvidenceBudget(retention=timedelta(days=days))
        removed = EvidenceStore(evidence_dir or default_evidence_dir(store), store, budget=budget).purge()
    finally:
        store.close()
    typer.echo(f"purged {removed} evidence record(s)")
