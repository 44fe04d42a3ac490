"""`bindrift serve`: the REST API and the Incident Explorer UI (loopback by default)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bindrift.cli.common import DbOption, open_store

if TYPE_CHECKING:
    import uvicorn

    from bindrift.sinks.api.auth import TokenSet
    from bindrift.sinks.store.sql_store import SqlStore

TokensOption = Annotated[
    Path | None,
    typer.Option("--tokens-file", help="Tokens, one 'read|admin NAME SECRET' per line (also BINDRIFT_ADMIN_TOKEN, "
                 "BINDRIFT_READ_TOKEN). Without any, an admin token is made and kept in the data directory."),
]  # fmt: skip


def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    tokens_file: TokensOption = None,
    evidence_dir: Annotated[
        str, typer.Option(help="The agent's evidence store (default: evidence/ beside the SQLite database).")
    ] = "",
) -> None:
    """Serve the findings API (OpenAPI at /api/v1/openapi.json), /healthz, /metrics and the Incident Explorer."""
    store = open_store(db)
    try:
        server = make_server(store, host, port, tokens_file, evidence_dir)
        server.run()
    finally:
        store.close()


def make_server(
    store: SqlStore, host: str, port: int, tokens_file: Path | None, evidence_dir: str = ""
) -> uvicorn.Server:
    """A uvicorn server of the API over `store` (captured binaries from `evidence_dir`); says where to sign in."""
    import uvicorn

    from bindrift.cli.agent_response import default_evidence_dir
    from bindrift.response.evidence import EvidenceStore
    from bindrift.sinks.api.app import create_app

    tokens = _tokens(tokens_file)
    evidence = EvidenceStore(evidence_dir or default_evidence_dir(store), store)
    config = uvicorn.Config(create_app(store, tokens, evidence), host=host, port=port, log_level="warning",
                            access_log=False, server_header=False)  # fmt: skip
    print(f"bindrift: Incident Explorer on http://{_display_host(host)}:{port}/ (store {store.display_url})",
          file=sys.stderr, flush=True)  # fmt: skip
    return uvicorn.Server(config)


def serve_in_background(
    store: SqlStore, listen: str, tokens_file: Path | None, evidence_dir: str = ""
) -> uvicorn.Server:
    """Start the API in a thread of this process (for `bindrift watch --serve`); returns the running server.
    uvicorn leaves the signals to the main thread (the agent) when it runs in another one."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"--serve takes HOST:PORT, not {listen!r}")
    server = make_server(store, host.strip("[]"), int(port), tokens_file, evidence_dir)
    threading.Thread(target=server.run, name="bindrift-api", daemon=True).start()
    return server


def _display_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _tokens(tokens_file: Path | None) -> TokenSet:
    from bindrift.sinks.api.auth import Principal, TokenSet, load_tokens, new_secret

    try:
        tokens = load_tokens(tokens_file)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    if len(tokens):
        return tokens
    from bindrift.config import data_dir

    path = data_dir() / "api-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_secret() + "\n")
    secret = path.read_text().strip()
    print(f"bindrift: no API tokens configured; sign in with the admin token in {path}", file=sys.stderr, flush=True)
    return TokenSet({secret: Principal("admin", "admin")})
