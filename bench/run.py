"""bindrift benchmarks against the peers measured in the same run (not part of the test suite).

    python bench/run.py            # full: every ELF under /usr/bin, /usr/sbin, /usr/lib; median of 3
    python bench/run.py --quick    # one repetition, 300 files for the in-process comparison
    python bench/run.py --baseline /path/to/other/.venv/bin/bindrift   # also the header scans of another build

Prints a markdown table of ratios and writes the raw figures to bench/results/scan.json.
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

ROOTS = ("/usr/bin", "/usr/sbin", "/usr/lib")
HERE = Path(__file__).resolve().parent
BINDRIFT = str(Path(sys.executable).with_name("bindrift"))


def elf_files() -> list[str]:
    """Every regular ELF file under ROOTS (symlinks not followed), in walk order."""
    from bindrift.sensors.files import iter_files
    from bindrift.sensors.targets import DiskFile

    return [f.path for f in iter_files(ROOTS) if isinstance(f, DiskFile) and _is_elf(f.path)]


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def _write_clean_list(files: list[str], nul_list: Path, clean: Path) -> int:
    """Write to `clean` the files of `nul_list` that a scan reports with no finding at all; their count."""
    out = subprocess.run([BINDRIFT, "scan", "--no-hash", "--format", "json", "--min-severity", "info",
                          "--files-from", str(nul_list)], capture_output=True, check=False).stdout  # fmt: skip
    flagged = {report["path"] for report in map(json.loads, out.splitlines()) if report.get("findings")}
    kept = [path for path in files if path not in flagged]
    clean.write_bytes(b"\0".join(path.encode() for path in kept))
    return len(kept)


def timed(commands: dict[str, str], reps: int) -> dict[str, float]:
    """Median wall time of each whole shell command, output discarded. The commands take turns in every
    repetition, so a load that comes and goes on a shared machine weighs on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(reps):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(["bash", "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


IN_PROCESS = r"""
import os, statistics, sys, time
paths = open(sys.argv[2]).read().split("\0")
tool = sys.argv[1]
if tool == "bindrift":
    from bindrift.analysis.arch import HostProfile
    from bindrift.analysis.triage import triage
    host = HostProfile.detect()
    run = lambda p: triage(p, host=host, compute_hash=False)
elif tool == "lief":
    import lief
    lief.logging.disable()
    run = lambda p: lief.ELF.parse(p)
else:
    from elftools.elf.elffile import ELFFile
    def run(p):
        with open(p, "rb") as fh:
            elf = ELFFile(fh)
            for seg in elf.iter_segments():
                seg.header
            for sec in elf.iter_sections():
                sec.name
per_file, failures = [], 0
for p in paths:
    start = time.perf_counter_ns()
    try:
        run(p)
    except Exception:
        failures += 1
    per_file.append(time.perf_counter_ns() - start)
print(statistics.median(per_file) / 1000, sum(per_file) / 1000 / len(per_file), failures)
"""


def in_process(tool: str, list_file: str) -> tuple[float, float, int] | None:
    """(median µs, mean µs, failures) per file in a subprocess (LIEF may crash on hostile files)."""
    try:
        out = subprocess.run([sys.executable, "-c", IN_PROCESS, tool, list_file], capture_output=True, text=True,
                             timeout=900, check=True).stdout.split()  # fmt: skip
    except (subprocess.SubprocessError, OSError):
        return None
    return float(out[0]), float(out[1]), int(out[2])


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bindrift-bench-"))
    try:
        measure(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(work: Path) -> None:
    """Every measurement, with the file lists kept in `work`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one repetition and a 300-file in-process sample")
    parser.add_argument("--baseline", metavar="BINDRIFT",
                        help="another bindrift executable (e.g. the previous tree's) whose header-only scans are "
                             "measured in the same run")  # fmt: skip
    parser.add_argument("--header-only", action="store_true", help="leave out the SHA-256 rows and LIEF/pyelftools")
    parser.add_argument("--reps", type=int, help="repetitions of each whole-process command (default 3, --quick 1)")
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    files = elf_files()
    total_bytes = sum(os.path.getsize(p) for p in files)
    nul_list = work / "files.nul"
    nul_list.write_bytes(b"\0".join(p.encode() for p in files))
    sample = work / "sample.nul"
    sample.write_bytes(b"\0".join(p.encode() for p in files[:: max(1, len(files) // (300 if args.quick else 1000))]))
    subprocess.run(["bash", "-c", f"xargs -0 cat < {nul_list} > /dev/null"], check=False)  # warm the page cache

    scan = f"{BINDRIFT} scan --format json --files-from {nul_list}"
    one_file = f"{BINDRIFT} scan --no-hash --format json {files[0]}"
    header_scans = {
        "start-up: python -c pass": f"{sys.executable} -c pass",
        "start-up: bindrift scan of one file": one_file,
        "readelf -h -l -S -W (xargs)": f"xargs -0 readelf -h -l -S -W < {nul_list}",
        "bindrift scan --no-hash --jobs 1": f"{scan} --no-hash --jobs 1",
        "bindrift scan --no-hash (default jobs)": f"{scan} --no-hash",
        "bindrift scan --no-hash --jobs 2": f"{scan} --no-hash --jobs 2",
        # The package-record cache (analysis/provenance/index_cache.py) is warm in the rows above: the
        # clean-list scan below ran first. These rows read the records as a first scan would.
        "bindrift scan --no-hash --jobs 1, record cache off": f"BINDRIFT_RECORD_CACHE=0 {scan} --no-hash --jobs 1",
        "bindrift scan --no-hash (default jobs), record cache off": f"BINDRIFT_RECORD_CACHE=0 {scan} --no-hash",
    }
    if args.baseline:
        before = f"{args.baseline} scan --format json --files-from {nul_list} --no-hash"
        header_scans["baseline: bindrift scan --no-hash --jobs 1"] = f"{before} --jobs 1"
        header_scans["baseline: bindrift scan --no-hash (default jobs)"] = before
    # The same scans over the files with nothing to report: no finding to cap, so the package records
    # (analysis/provenance, loaded by the first file with a finding) are never read.
    clean = work / "clean.nul"
    clean_count = _write_clean_list(files, nul_list, clean)
    header_scans |= {
        "no finding: readelf -h -l -S -W (xargs)": f"xargs -0 readelf -h -l -S -W < {clean}",
        "no finding: bindrift scan --no-hash --jobs 1": f"{BINDRIFT} scan --format json --files-from {clean} "
                                                        "--no-hash --jobs 1",
        "no finding: bindrift scan --no-hash (default jobs)": f"{BINDRIFT} scan --format json --files-from {clean} "
                                                              "--no-hash",
    }  # fmt: skip
    rows = timed(header_scans, reps)
    rows |= {} if args.header_only else timed({
        "openssl dgst -sha256 (xargs)": f"xargs -0 openssl dgst -sha256 < {nul_list}",
        "bindrift scan --jobs 1 (with SHA-256)": f"{scan} --jobs 1",
        "bindrift scan (with SHA-256, default jobs)": scan,
    }, reps)  # fmt: skip
    mb = total_bytes / 1e6
    print(f"\n{len(files)} ELF files, {mb:,.0f} MB, {os.cpu_count()} CPUs, median of {reps}\n")
    print("| command | seconds | files/s | MB/s | ratio vs peer |")
    print("| --- | ---: | ---: | ---: | ---: |")
    peers = {"bindrift scan --no": "readelf -h -l -S -W (xargs)", "bindrift scan --j": "openssl dgst -sha256 (xargs)",
             "bindrift scan (": "openssl dgst -sha256 (xargs)",
             "baseline: bindrift scan --no": "readelf -h -l -S -W (xargs)",
             "no finding: bindrift": "no finding: readelf -h -l -S -W (xargs)"}  # fmt: skip
    for name, seconds in rows.items():
        peer = next((rows[p] for prefix, p in peers.items() if name.startswith(prefix)), None)
        ratio = f"{peer / seconds:.2f}×" if peer else "peer" if name in peers.values() else "—"
        print(f"| {name} | {seconds:.3f} | {len(files) / seconds:,.0f} | {mb / seconds:,.0f} | {ratio} |")
    print(f"\n'no finding': the {clean_count} of these files with no finding at any severity")
    scaling = rows["bindrift scan --no-hash --jobs 1"] / rows["bindrift scan --no-hash --jobs 2"]
    print(f"\n--jobs 2 vs --jobs 1 (header checks): {scaling:.2f}×")

    print("\nIn-process per-file cost on a sample (µs): median / mean / failures")
    tools = ("bindrift",) if args.header_only else ("bindrift", "lief", "pyelftools")
    per_tool = {tool: in_process(tool, str(sample)) for tool in tools}
    for tool, result in per_tool.items():
        print(f"  {tool:10s} " + ("crashed or timed out" if result is None else
                                   f"{result[0]:8.1f} / {result[1]:8.1f} / {result[2]}"))  # fmt: skip
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "scan.json").write_text(json.dumps(
        {"files": len(files), "bytes": total_bytes, "reps": reps, "seconds": rows, "in_process_us": per_tool},
        indent=2,
    ))  # fmt: skip


if __name__ == "__main__":
    main()
