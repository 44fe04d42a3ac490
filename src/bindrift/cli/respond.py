"""`bindrift respond kill|pause|stop|quarantine|restore|delete-pod FINDING_ID [--force]`: act on a finding (as
root, on the node that runs the container) once its target is re-identified; every action, refused or not,
is recorded in the audit log and on the finding."""

from __future__ import annotations

from typing import Annotated

import typer

from bindrift.cli.common import DbOption, current_user, open_store

app = typer.Typer(help="Act on a finding: kill, pause, stop, quarantine, restore, delete the pod.",
                  no_args_is_help=True)  # fmt: skip
ByOption = Annotated[str, typer.Option(help="Who (default: the current user).")]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Act on a finding whose target cannot be verified: one resting on an external event alone "
        "(event-only) or without container scope. Recorded with the action. A target that no longer matches "
        "the finding is refused even so.",
    ),
]


def _act(verb: str, finding_id: str, by: str, db: str | None, force: bool) -> None:
    import os

    from bindrift.agent.response import container_root
    from bindrift.response.responder import Responder, UnknownFindingError
    from bindrift.visible_text import visible

    store = open_store(db)
    try:
        responder = Responder(store, locate=container_root, runtime_env=os.environ)
        action = responder.act(verb, finding_id, by or current_user(), force=force)
    except UnknownFindingError as exc:
        typer.echo(f"no finding {finding_id}", err=True)
        raise typer.Exit(2) from exc
    finally:
        store.close()
    typer.echo(("done: " if action.ok else "failed: ") + visible(action.detail), err=not action.ok)
    if not action.ok:
        raise typer.Exit(1)


@app.command()
def kill(finding_id: str, by: ByOption = "", db: DbOption = None, force: ForceOption = False) -> None:
    """SIGKILL the finding's process (through a pidfd, if it is still in the container)."""
    _act("kill", finding_id, by, db, force)


@app.command()
def pause(finding_id: str, by: ByOption = "", db: DbOption = None, force: ForceOption = False) -> None:
    """Pause the container (podman / docker pause, ctr task pause): its state is kept for inspection."""
    _act("pause", finding_id, by, db, force)


@app.command()
def stop(finding_id: str, by: ByOption = "", db: DbOption = None, force: ForceOption = False) -> None:
    """Stop the container through its runtime."""
    _act("stop", finding_id, by, db, force)


@app.command()
def quarantine(finding_id: str, by: ByOption = "", db: DbOption = None, force: ForceOption = False) -> None:
    """Make the finding's file unexecutable (mode 000) in the running container; `restore` undoes it."""
    _act("quarantine", finding_id, by, db, force)


@app.command()
def restore(finding_id: str, by: ByOption = "", db: DbOption = None, force: ForceOption = False) -> None:
    """Give a quarantined file back its mode."""
    _act("restore", finding_id, by, db, force)


@app.command("delete-pod")
def delete_pod(finding_id: str, by: ByOption = "", db: DbOption = None, force: ForceOption = False) -> None:
    """Delete the finding's pod through the Kubernetes API (when bindrift runs in the cluster)."""
    _act("delete-pod", finding_id, by, db, force)
