"""`bindrift watch`: the node agent (root)."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from bindrift.cli.common import DbOption, open_store


def watch(
    db: DbOption = None,
    node_name: Annotated[str, typer.Option(help="Node name in findings (default: the host name).")] = "",
    cluster: Annotated[str, typer.Option(help="Cluster name in findings.")] = "",
    host_path: Annotated[list[str] | None, typer.Option(help="Also watch this host file system (repeatable).")] = None,
    duration: Annotated[float, typer.Option(help="Stop after this many seconds (0: run until stopped).")] = 0.0,
) -> None:
    """Watch every running container (podman, containerd, CRI-O, Docker): suspicious binaries written, and
    binaries not in the image executed. Findings go to the store and, as JSON lines, to stdout."""
    from bindrift.cli.agent import Agent, print_finding

    store = open_store(db)
    agent = Agent(store, node=node_name, cluster=cluster, host_paths=tuple(host_path or ()), on_finding=print_finding)

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
        agent.close()
        store.close()
