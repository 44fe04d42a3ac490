"""Image scanning in-stream against "extract to tmpfs, then scan the tree", measured in the same run.

    python bench/images.py                # image of /usr/bin + /usr/lib/x86_64-linux-gnu, median of 3
    python bench/images.py --quick        # one repetition

Builds the image with podman (state in a private folder, removed after), saves it as a docker archive
and as an OCI archive with gzip layers, then times whole processes (wall seconds, peak RSS):
`bindrift scan ARCHIVE` against `tar -x` of the same layers into a private tmpfs followed by
`bindrift scan TREE`. Prints a markdown table; raw figures go to bench/results/images.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
SOURCES = ["usr/bin", "usr/lib/x86_64-linux-gnu"]


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
            "CONTAINERS_CONF": str(root / "containers.conf")}  # fmt: skip


def podman(root: Path, *args: str) -> str:
    env = _env(root)
    return subprocess.run(["podman", *args], env=env, check=True, capture_output=True, text=True).stdout


def build(work: Path) -> dict[str, Path]:
    """The image saved as a docker archive (uncompressed layer) and an OCI layout with a gzip layer."""
    root = work / "podman"
    root.mkdir()
    (root / "containers.conf").write_text(f'[engine]\ntmp_dir = "{root}/tmp"\n')
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/storage"\nrunroot = "{root}/run"\n'
    )
    rootfs = work / "rootfs.tar"
    subprocess.run(["tar", "-cf", str(rootfs), "-C", "/", *SOURCES], check=True, stderr=subprocess.DEVNULL)
    try:
        podman(root, "import", str(rootfs), "localhost/bdbench:latest")
        rootfs.unlink()
        saved = {"docker-archive": work / "docker.tar", "oci-gzip": work / "oci-gzip"}
        podman(root, "save", "--format", "docker-archive", "-o", str(saved["docker-archive"]), "localhost/bdbench")
        podman(root, "push", "--compression-format", "gzip", "localhost/bdbench:latest", f"oci:{saved['oci-gzip']}")
    finally:
        subprocess.run(["podman", "system", "reset", "-f"], env=_env(root), capture_output=True, check=False)
    return saved


def layers_of(saved: Path) -> list[str]:
    """Shell commands writing each layer's uncompressed tar to stdout, lowest first."""
    if saved.is_dir():
        manifest_digest = json.loads((saved / "index.json").read_text())["manifests"][0]["digest"]
        manifest = json.loads((saved / "blobs" / manifest_digest.replace(":", "/")).read_text())
        return [f"gzip -dc {saved}/blobs/{layer['digest'].replace(':', '/')}" for layer in manifest["layers"]]
    listing = json.loads(subprocess.run(["tar", "-xOf", str(saved), "manifest.json"], capture_output=True,
                                        check=True).stdout)  # fmt: skip
    return [f"tar -xOf {saved} {layer}" for layer in listing[0]["Layers"]]


def measured(command: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of the largest process of a shell command, output discarded."""
    start = time.perf_counter()
    wrapped = [sys.executable, "-c", MEASURE, command]
    out = subprocess.run(wrapped, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False).stdout
    elapsed = time.perf_counter() - start
    return elapsed, int(out.split()[-1]) * 1024


def same_elf_files(ours: str, peer: str) -> dict[str, float]:
    """Both scans once more, output kept: the ELF files (path → SHA-256) each reports, and the difference."""
    found = []
    for command in (ours, peer):
        out = subprocess.run(["bash", "-c", command], capture_output=True, check=False).stdout
        found.append({r["path"]: r["sha256"] for r in map(json.loads, out.splitlines())})
    return {
        "in-stream": len(found[0]),
        "tree": len(found[1]),
        "differing": len(set(found[0].items()) ^ set(found[1].items())),
    }


# Runs a shell command and prints the peak RSS of its largest descendant (KiB) last on stdout.
MEASURE = """import resource, subprocess, sys
subprocess.run(["bash", "-c", sys.argv[1]], stdout=subprocess.DEVNULL, check=False)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one repetition")
    args = parser.parse_args()
    reps = 1 if args.quick else 3
    work = Path(tempfile.mkdtemp(prefix="bindrift-bench-images-"))
    shm = Path(tempfile.mkdtemp(prefix="bindrift-bench-tree-", dir="/dev/shm"))
    try:
        saved = build(work)
        rows: dict[str, dict[str, float]] = {}
        for name, target in saved.items():
            size = sum(f.stat().st_size for f in ([target] if target.is_file() else target.rglob("*")) if f.is_file())
            extract = " && ".join(f"{layer} | tar -xf - -C {shm}/t" for layer in layers_of(target))
            peer = f"rm -rf {shm}/t && mkdir {shm}/t && {extract} && {BINDRIFT} scan --format json {shm}/t"
            ours = f"{BINDRIFT} scan --format json {target}"
            subprocess.run(["bash", "-c", f"cat {target if target.is_file() else str(target) + '/blobs/*/*'} "
                            "> /dev/null"], check=False)  # fmt: skip  # warm the page cache
            runs = {"in-stream": [measured(ours) for _ in range(reps)],
                    "extract+scan": [measured(peer) for _ in range(reps)]}  # fmt: skip
            rows[f"{name} same ELF files"] = same_elf_files(ours, f'{peer} | sed \'s#"path":"{shm}/t#"path":"#\'')
            subprocess.run(["rm", "-rf", f"{shm}/t"], check=False)
            for kind, results in runs.items():
                rows[f"{name} {kind}"] = {
                    "seconds": statistics.median(r[0] for r in results),
                    "rss_mb": max(r[1] for r in results) / 2**20,
                    "archive_mb": size / 1e6,
                }
        print(f"\nimage of /{' + /'.join(SOURCES)}, median of {reps}, {os.cpu_count()} CPUs\n")
        print("| archive | method | MB | seconds | peak RSS (MiB) | ratio vs extract+scan |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for name in saved:
            peer_s = rows[f"{name} extract+scan"]["seconds"]
            for kind in ("in-stream", "extract+scan"):
                row = rows[f"{name} {kind}"]
                ratio = f"{peer_s / row['seconds']:.2f}×" if kind == "in-stream" else "peer"
                print(f"| {name} | {kind} | {row['archive_mb']:,.0f} | {row['seconds']:.2f} | {row['rss_mb']:.0f} "
                      f"| {ratio} |")  # fmt: skip
        for name in saved:
            same = rows[f"{name} same ELF files"]
            print(f"\n{name}: {same['in-stream']:.0f} ELF files in-stream, {same['tree']:.0f} in the extracted tree, "
                  f"{same['differing']:.0f} differing (path or SHA-256)")  # fmt: skip
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "images.json").write_text(json.dumps({"reps": reps, "rows": rows}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
