"""`bindrift suppress add|list|remove`: suppression rules (suppressed findings are stored muted)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer

from bindrift.cli.common import DbOption, current_user, open_store, parse_when

app = typer.Typer(help="Suppression rules scoped to where noise comes from.", no_args_is_help=True)


@app.command()
def add(
    reason: Annotated[str, typer.Option(help="Why these findings are expected.")],
    cluster: str = "",
    namespace: str = "",
    pod: Annotated[str, typer.Option(help="Pod name glob.")] = "",
    image: Annotated[str, typer.Option(help="Repository (any tag), repository:tag, or sha256: digest.")] = "",
    container: Annotated[str, typer.Option(help="Container name glob or id prefix.")] = "",
    path: Annotated[str, typer.Option(help="File path glob.")] = "",
    writer: Annotated[str, typer.Option(help="Writer process name or executable glob.")] = "",
    sha256: str = "",
    category: str = "",
    expires: Annotated[str, typer.Option(help="e.g. 7d, or an ISO 8601 time; default: never.")] = "",
    by: Annotated[str, typer.Option(help="Who (default: the current user).")] = "",
    db: DbOption = None,
) -> None:
    """Add a rule: every scope given must match."""
    from bindrift.findings.suppression import SuppressionRule

    scopes = {"cluster": cluster, "namespace": namespace, "pod": pod, "image": image, "container": container,
              "path": path, "writer": writer, "sha256": sha256.lower(), "category": category}  # fmt: skip
    if not any(scopes.values()):
        raise typer.BadParameter("give at least one scope (--namespace, --image, --path, …)")
    rule = SuppressionRule(
        id="sup-" + uuid.uuid4().hex[:12], reason=reason, created_by=by or current_user(),
        created_at=datetime.now(UTC), expires_at=parse_when(expires, future=True) if expires else None, **scopes,
    )  # fmt: skip
    store = open_store(db)
    try:
        store.add_suppression(rule)
    finally:
        store.close()
    typer.echo(rule.id)


@app.command("list")
def list_rules(db: DbOption = None) -> None:
    """Every rule with its scopes, reason, author and expiry."""
    import msgspec

    store = open_store(db)
    try:
        rules = store.suppression_rules()
    finally:
        store.close()
    now = datetime.now(UTC)
    for rule in rules:
        fields = msgspec.structs.asdict(rule)
        scopes = " ".join(f"{k}={v}" for k, v in fields.items()
                          if k not in ("id", "reason", "created_by", "created_at", "expires_at") and v)  # fmt: skip
        status = "active" if rule.active(now) else "expired"
        expiry = rule.expires_at.isoformat() if rule.expires_at else "never"
        typer.echo(f"{rule.id} {status} {scopes} — {rule.reason} (by {rule.created_by}, expires {expiry})")


@app.command()
def remove(rule_id: str, db: DbOption = None) -> None:
    """Delete a rule."""
    store = open_store(db)
    try:
        removed = store.remove_suppression(rule_id)
    finally:
        store.close()
    if not removed:
        typer.echo(f"no rule {rule_id}", err=True)
        raise typer.Exit(2)
    typer.echo(f"removed {rule_id}")
