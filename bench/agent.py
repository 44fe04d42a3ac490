"""Runtime-agent benchmarks with real podman containers (root; not part of the test suite).

    python bench/agent.py            # full: 10,000-file untar, 5,000 execs, 20 latency samples, 150 containers
    python bench/agent.py --quick    # a tenth of the work
    python bench/agent.py --batch-process-events   # the agent reading process events every 10 ms
    python bench/agent.py --compare-process-sensors  # each round: no agent, procfs, then eBPF process context
    python bench/agent.py --tree /usr/include        # the real tree untarred as the second write workload

Two write workloads: the worst case, 10,000 files of a few bytes each (the agent's cost is per file), and a
real tree as a package install writes it (`--tree`, default /usr/include: C headers, ≈ 8,000 files of
≈ 16 KiB). Each workload runs in a container without the agent and with `bindrift watch`, in the same run; prints
overheads (wall time, and the container's own CPU time from its cgroup: what watching costs the writer in
the kernel, without the scheduling noise of a shared machine), write/exec → stored-finding latency
(p50/p99), and the agent's RSS with N running containers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.containers import Podman, busybox_rootfs_tar, make_podman  # noqa: E402

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
BUSYBOX = HERE.parent / ".cache" / "test-binaries" / "busybox-static-amd64" / "bin" / "busybox"


def exec_in(podman: Podman, cid: str, script: str) -> float:
    start = time.perf_counter()
    subprocess.run(["podman", "exec", cid, "sh", "-c", script], env=podman.env, check=True, capture_output=True)
    return time.perf_counter() - start


class ContainerCpu:
    """CPU time (user + system) used by everything in a container, from its cgroup (v2 or v1 cpuacct)."""

    def __init__(self, podman: Podman, cid: str) -> None:
        path = podman("inspect", "--format", "{{.State.CgroupPath}}", cid).strip()
        v2 = Path(f"/sys/fs/cgroup{path}/cpu.stat")
        self.file, self.v2 = (v2, True) if v2.exists() else (Path(f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage"), False)

    def seconds(self) -> float:
        text = self.file.read_text()
        if self.v2:
            return int(text.split("usage_usec ", 1)[1].split()[0]) / 1e6
        return int(text) / 1e9


def measured(podman: Podman, cid: str, script: str, cpu: ContainerCpu) -> tuple[float, float]:
    """Wall time of `script` in the container, and the container's CPU time meanwhile."""
    before = cpu.seconds()
    wall = exec_in(podman, cid, script)
    return wall, cpu.seconds() - before


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU time of a process (less sensitive than wall time to a loaded machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_agent(db: str, log: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    with log.open("w") as err:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, *extra], stdout=subprocess.DEVNULL, stderr=err)
    while "agent started" not in log.read_text():
        time.sleep(0.05)
    return agent


def wait_watched(log: Path, cid: str, swept: bool = False) -> None:
    """Until the agent watches the container (and, with `swept`, has finished its startup sweep: the
    overhead measured is then the steady state's, the sweep's own cost is a one-off at start)."""
    text = f"swept container {cid}" if swept else f"watching container {cid}"
    while text not in log.read_text():
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 5, 2 with --quick)")
    parser.add_argument("--batch-process-events", action="store_true", help="run the agent with this option")
    parser.add_argument("--process-sensor", choices=["auto", "ebpf", "procfs"], default="auto")
    parser.add_argument(
        "--compare-process-sensors",
        action="store_true",
        help="in every round run the agent with procfs, then with ebpf (latency and RSS: ebpf)",
    )
    parser.add_argument("--tree", default="/usr/include", help="a host folder untarred as the second write workload")
    args = parser.parse_args()
    sensors = ["procfs", "ebpf"] if args.compare_process_sensors else [args.process_sensor]
    scale = 10 if args.quick else 1
    files, execs, samples, containers = 10_000 // scale, 5_000 // scale, max(5, 20 // scale), max(5, 150 // scale)
    work = Path(tempfile.mkdtemp(prefix="bindrift-agent-bench-"))
    # Container storage on a tmpfs: the disk's own noise (seconds, on a shared VM) would hide the agent's cost.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g", "bindrift-bench", str(work)], check=True)
    podman = make_podman(work / "podman")
    podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_rootfs_tar(BUSYBOX, work / "rootfs.tar")),
           "localhost/bdbench:latest")  # fmt: skip
    make_tar = (f"mkdir -p /tmp/src && cd /tmp/src && i=0; while [ $i -lt {files} ]; do echo $i > f$i; "
                "i=$((i+1)); done; tar -cf /tmp/files.tar -C /tmp/src .")  # fmt: skip
    untar = "rm -rf /tmp/x && mkdir /tmp/x && tar -xf /tmp/files.tar -C /tmp/x"
    untar_tree = "rm -rf /tmp/y && mkdir /tmp/y && tar -xf /tmp/tree.tar -C /tmp/y"
    loop = f"i=0; while [ $i -lt {execs} ]; do /bin/true; i=$((i+1)); done"
    tree_tar = work / "tree.tar"
    subprocess.run(["tar", "-cf", str(tree_tar), "-C", args.tree, "."], check=True, capture_output=True)
    tree_files = sum(len(names) for _, _, names in os.walk(args.tree))
    workloads = (("write", untar), ("tree", untar_tree), ("exec", loop))
    results: dict[str, float] = {}
    labels = ["without agent", *(f"with agent ({sensor})" for sensor in sensors)]
    timings: dict[str, list[float]] = {f"{kind} {label}": [] for kind, _ in workloads for label in labels}
    ratios: dict[str, list[float]] = {f"{kind} ({sensor})": [] for kind, _ in workloads for sensor in sensors}
    cpu_ratios: dict[str, list[float]] = {name: [] for name in ratios}
    agent_cpu: dict[str, list[float]] = {name: [] for name in ratios}
    rounds = args.rounds or (2 if args.quick else 5)
    agent: subprocess.Popen[bytes] | None = None
    try:
        cid = podman("run", "-d", "localhost/bdbench:latest", "sleep", "3600").strip()
        exec_in(podman, cid, make_tar)
        podman("cp", str(tree_tar), f"{cid}:/tmp/tree.tar")
        container_cpu = ContainerCpu(podman, cid)
        for warm_up in (untar, untar_tree):  # each round's untar removes the previous one's files, the first's too
            exec_in(podman, cid, warm_up)
        db, log = f"sqlite:///{work / 'bench.db'}", work / "agent.log"
        # Rounds alternate without and with the agent, each ratio taken within its round: the VM's drift
        # over a minute is larger than the effect measured.
        for round_ in range(rounds):
            if agent is not None:
                agent.terminate()
                agent.wait(timeout=30)
            baseline_cpu = {}
            for kind, script in workloads:
                wall, baseline_cpu[kind] = measured(podman, cid, script, container_cpu)
                timings[f"{kind} without agent"].append(wall)
            for sensor in sensors:
                if agent is not None:
                    agent.terminate()
                    agent.wait(timeout=30)
                extra = ["--process-sensor", sensor, *(["--batch-process-events"] if args.batch_process_events else [])]
                agent = start_agent(db, log, extra)
                wait_watched(log, cid, swept=True)
                for kind, script in workloads:
                    cpu_before = cpu_s(agent.pid)
                    wall, used = measured(podman, cid, script, container_cpu)
                    timings[f"{kind} with agent ({sensor})"].append(wall)
                    agent_cpu[f"{kind} ({sensor})"].append(cpu_s(agent.pid) - cpu_before)
                    cpu_ratios[f"{kind} ({sensor})"].append(used / baseline_cpu[kind])
                    ratios[f"{kind} ({sensor})"].append(timings[f"{kind} with agent ({sensor})"][-1]
                                                        / timings[f"{kind} without agent"][-1])  # fmt: skip
            latest = ", ".join(f"{name} {values[-1] - 1:+.1%} (CPU {cpu_ratios[name][-1] - 1:+.1%})"
                               for name, values in ratios.items())  # fmt: skip
            print(f"round {round_ + 1}: {latest}", file=sys.stderr)
        for name, values in timings.items():
            results[f"{name} (s, median)"] = statistics.median(values)
        per_unit = {"write": (files, "file"), "tree": (tree_files, "file"), "exec": (execs, "exec")}
        for name, values in agent_cpu.items():
            per, unit = per_unit[name.split()[0]]
            results[f"agent CPU per {unit}, {name} (µs, median)"] = statistics.median(values) / per * 1e6
        assert agent is not None
        from datetime import datetime

        from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

        for n in range(samples):  # each: write an added binary, then run it
            exec_in(podman, cid, f"cat /bin/busybox > /tmp/a{n}; echo {n} >> /tmp/a{n}; chmod +x /tmp/a{n}; "
                                 f"/tmp/a{n} true || true")  # fmt: skip
        time.sleep(1)
        store = SqlStore(db)
        found = store.list_findings(FindingFilter(container_id=cid, limit=1000))
        store.close()
        # From the file's change (written just before the exec) to the detection being stored.
        latencies = sorted(
            (f.first_seen - datetime.fromisoformat(str(e.values["ctime"]))).total_seconds()
            for f in found for e in f.evidence if e.kind == "timing"
        )  # fmt: skip
        results["write+exec to stored finding p50 (s)"] = latencies[len(latencies) // 2]
        p99 = min(len(latencies) - 1, int(len(latencies) * 0.99))
        results["write+exec to stored finding p99 (s)"] = latencies[p99]
        others = [podman("run", "-d", "localhost/bdbench:latest", "sleep", "3600").strip()
                  for _ in range(containers - 1)]  # fmt: skip
        for other in others:
            wait_watched(log, other)
        results[f"agent RSS with {containers} containers (MiB)"] = rss_kib(agent.pid) / 1024
        agent.terminate()
        agent.wait(timeout=30)
        described = (f"untar {files} files; tree workload: untar {args.tree} ({tree_files} files, "
                     f"{tree_tar.stat().st_size / 2**20:.0f} MiB); exec workload: {execs} execs of /bin/true; "
                     f"{rounds} rounds")  # fmt: skip
        report(results, ratios, cpu_ratios, described)
    finally:
        if agent is not None and agent.poll() is None:  # a failed run leaves no agent behind
            agent.terminate()
            agent.wait(timeout=30)
        # Containers first, in batches: `system reset` alone takes minutes with 150 of them.
        running = podman("ps", "-aq").split()
        for start in range(0, len(running), 25):
            subprocess.run(["podman", "rm", "-f", "-t", "0", *running[start : start + 25]], env=podman.env,
                           capture_output=True, timeout=300, check=False)  # fmt: skip
        podman.reset()
        subprocess.run(["umount", "-l", str(work)], check=False)


def report(results: dict[str, float], ratios: dict[str, list[float]], cpu_ratios: dict[str, list[float]],
           workloads: str) -> None:  # fmt: skip
    """The figures as a Markdown table on stdout, and in bench/results/agent.json."""
    print(f"\nwrite workload: {workloads}\n")
    print("| measurement | value |\n| --- | ---: |")
    for name, value in results.items():
        print(f"| {name} | {value:.3f} |")
    for name, values in ratios.items():
        each = ", ".join(f"{r - 1:+.1%}" for r in values)
        print(f"| {name} overhead (median of the rounds' ratios) | {statistics.median(values) - 1:+.1%} ({each}) |")
        results[f"{name} overhead"] = statistics.median(values) - 1
    for name, values in cpu_ratios.items():
        each = ", ".join(f"{r - 1:+.1%}" for r in values)
        print(f"| {name} container CPU overhead (median of the rounds' ratios) | {statistics.median(values) - 1:+.1%} "
              f"({each}) |")  # fmt: skip
        results[f"{name} container CPU overhead"] = statistics.median(values) - 1
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "agent.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
