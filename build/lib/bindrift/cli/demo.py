"""`bindrift demo`: fill a store by running real scenarios, so a new user sees a populated explorer.

1. The scanner over suspicious binaries made from a harmless binary of this host (demo_binaries).
2. As root, the agent over a private tmpfs: a Python one-liner downloads one of them from a loopback HTTP
   server, `cp` drops another — real writes, seen by fanotify, attributed to their writers.
3. As root with podman installed, the agent over a container of the demo's own (demo_container).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bindrift.cli.common import DbOption, open_store

if TYPE_CHECKING:
    from bindrift.sinks.store.sql_store import SqlStore

AGENT_RUN_S = 3.0
FETCH = "import sys, urllib.request; open(sys.argv[2], 'wb').write(urllib.request.urlopen(sys.argv[1]).read())"


def demo(
    db: DbOption = None,
    serve: Annotated[bool, typer.Option(help="Then serve the Incident Explorer on 127.0.0.1.")] = False,
    port: Annotated[int, typer.Option(help="Port for --serve.")] = 8080,
) -> None:
    """Run real scenarios (scanner, and the agent when run as root) into the store, then show what was found."""
    from bindrift.cli.demo_binaries import write_samples

    store = open_store(db)
    try:
        with tempfile.TemporaryDirectory(prefix="bindrift-demo-") as scratch:
            samples = write_samples(Path(scratch))
            stored = _scan(store, samples)
            print(f"bindrift demo: the scanner stored {stored} finding(s) from {len(samples)} binaries",
                  file=sys.stderr)  # fmt: skip
            if os.geteuid() == 0:
                _agent_scenario(store, Path(scratch))
                _container_scenario(store, Path(scratch))
            else:
                print("bindrift demo: not root, so the agent scenarios are skipped", file=sys.stderr)
        print(f"bindrift demo: {store.count_findings()} finding(s) in {store.display_url}", file=sys.stderr)
        if serve:
            from bindrift.cli.serve import make_server

            make_server(store, "127.0.0.1", port, None).run()
    finally:
        store.close()


def _scan(store: SqlStore, samples: list[Path]) -> int:
    """What `bindrift scan --store` does, over the samples."""
    from bindrift.analysis.triage import triage
    from bindrift.cli.scan_store import ScanFindings

    recorder = ScanFindings(store)
    for path in samples:
        recorder(triage(str(path)))
    return recorder.stored


def _agent_scenario(store: SqlStore, scratch: Path) -> None:
    """The agent watching a private tmpfs while real processes write suspicious binaries into it."""
    from bindrift.cli.agent import Agent

    mount = scratch / "srv"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "bindrift-demo", str(mount)],
                      check=False, capture_output=True).returncode != 0:  # fmt: skip
        print("bindrift demo: cannot mount a tmpfs, so the agent scenario is skipped", file=sys.stderr)
        return
    try:
        from datetime import UTC, datetime

        from bindrift.cli.demo_binaries import write_samples
        from bindrift.sinks.store.sql_store import FindingFilter

        started = datetime.now(UTC)
        served = scratch / "web"
        served.mkdir()
        agent = Agent(store, host_paths=(str(mount),))
        writer = threading.Thread(target=_write_into, args=(mount, write_samples(served, b"agent")), daemon=True)
        writer.start()
        try:
            agent.run(AGENT_RUN_S)
        finally:
            agent.close()
        writer.join(timeout=10)
        raised = store.count_findings(FindingFilter(since=started))
        print(f"bindrift demo: the agent raised {raised} finding(s) from writes into "
              f"{mount}", file=sys.stderr)  # fmt: skip
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def _container_scenario(store: SqlStore, scratch: Path) -> None:
    """The agent over a podman container of the demo's own, when podman is installed."""
    import shutil
    from datetime import UTC, datetime

    from bindrift.cli.demo_binaries import write_samples
    from bindrift.cli.demo_container import container_scenario
    from bindrift.sinks.store.sql_store import FindingFilter

    if shutil.which("podman") is None:
        print("bindrift demo: podman is not installed, so the container scenario is skipped", file=sys.stderr)
        return
    started = datetime.now(UTC)
    foreign = write_samples(scratch / "container-samples", b"container")[0]
    try:
        what = container_scenario(store, scratch, foreign)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        print(f"bindrift demo: the container scenario did not run: {exc}", file=sys.stderr)
        return
    raised = store.count_findings(FindingFilter(since=started))
    print(f"bindrift demo: {what}: {raised} finding(s)", file=sys.stderr)


def _write_into(mount: Path, samples: list[Path]) -> None:
    """A download by a Python one-liner from a loopback web server, and a `cp`."""
    time.sleep(0.3)
    by_name = {path.name: path for path in samples}

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """No access log on the terminal."""

    with ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(by_name["dropbear"].parent))) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/dropbear"
        subprocess.run([sys.executable, "-c", FETCH, url, str(mount / "dropbear")], check=False, timeout=20)
        server.shutdown()
    subprocess.run(["cp", str(by_name["xmrig"]), str(mount / ".xmrig")], check=False, timeout=20)
