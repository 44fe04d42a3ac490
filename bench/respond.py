"""What re-identifying the target costs `bindrift respond quarantine`, against its peer in the same run: the
unverified chmod it replaced (`open_in_root` + `fchmod`, no symlink / mount / inode / SHA-256 check).

    python bench/respond.py            # 1 MiB, 16 MiB and 64 MiB files, median of 15 rounds each
    python bench/respond.py --quick    # 1 MiB and 16 MiB, 5 rounds

Both run through the same store and file; the verified one records its action in the audit log as the
command does, the peer only changes the mode. Prints a markdown table of the medians and their ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.detections, as bench/bus.py does


def _median_ms(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        os.sync()
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _unverified(root: str, path: str) -> None:
    from bindrift.analysis.safe_open import open_in_root

    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(root_fd, path)
    finally:
        os.close(root_fd)
    try:
        os.fchmod(fd, 0)
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from tests.detections import detection

    from bindrift.findings.pipeline import FindingsPipeline
    from bindrift.response.responder import Responder
    from bindrift.schema.finding import FileInfo
    from bindrift.sinks.store.sql_store import SqlStore

    sizes = (1, 16) if args.quick else (1, 16, 64)
    rounds = 5 if args.quick else 15
    print("| file | unverified chmod (ms) | verified quarantine (ms) | ratio |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="bindrift-bench-respond-") as work:
        root = Path(work) / "root"
        (root / "tmp").mkdir(parents=True)
        store = SqlStore(f"sqlite:///{work}/bench.db")
        try:
            responder = Responder(store, locate=lambda _cid: str(root))
            for mib in sizes:
                data = os.urandom(mib << 20)
                target = root / "tmp" / f"bin{mib}"
                target.write_bytes(data)
                finding = FindingsPipeline(store).process(detection(file=FileInfo(
                    path=f"/tmp/bin{mib}", sha256=hashlib.sha256(data).hexdigest(), size=len(data))))  # fmt: skip

                def verified(finding_id: str = finding.id) -> None:
                    action = responder.act("quarantine", finding_id, "bench")
                    assert action.ok, action.detail

                peer = _median_ms(lambda mib=mib: _unverified(str(root), f"/tmp/bin{mib}"), rounds)
                ours = _median_ms(verified, rounds)
                print(f"| {mib} MiB | {peer:.2f} | {ours:.2f} | {ours / peer:.1f}× |")
        finally:
            store.close()


if __name__ == "__main__":
    main()
