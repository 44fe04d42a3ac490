"""Exec latency added by `prevent` mode, with real podman containers (root; not part of the test suite).

    python bench/prevent.py            # 5 rounds of 2,000 execs per configuration
    python bench/prevent.py --quick    # 2 rounds of 300

In one container, a static helper (compiled here with gcc) spawns `/bin/true` N times and times each exec
to exit. The same workload runs without the agent, with `bindrift watch` in alert mode (no policy), and
with a `prevent` policy (with `drift`) covering the container, in the same run; prints p50/p99 per
configuration, the latency each adds over the no-agent run, and ratios against it.
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
sys.path.insert(0, str(HERE.parent))

from tests.containers import Podman, busybox_rootfs_tar, make_podman  # noqa: E402

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
BINARIES = Path(os.environ.get("BINDRIFT_TEST_BINARIES", HERE.parent / ".cache" / "test-binaries"))
BUSYBOX = BINARIES / "busybox-static-amd64" / "bin" / "busybox"
EXECLAT = r"""
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    char *args[] = {"/bin/true", NULL};
    for (int i = 0; i < n; i++) {
        struct timespec a, b;
        pid_t pid;
        int status;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (posix_spawn(&pid, args[0], NULL, NULL, args, environ) != 0) return 2;
        waitpid(pid, &status, 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%ld\n", (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec));
    }
    return 0;
}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def measure(podman: Podman, cid: str, execs: int) -> list[float]:
    """Per-exec latencies in milliseconds over `execs` execs."""
    for _attempt in range(2):  # a shared machine: one transient podman failure is retried, and shown
        run = subprocess.run(["podman", "exec", cid, "/opt/execlat", str(execs)], env=podman.env, check=False,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
        if run.returncode == 0:
            return [int(line) / 1e6 for line in run.stdout.split()]
        print(f"podman exec exited {run.returncode}: {run.stderr.strip()[-500:]}", file=sys.stderr)
    raise RuntimeError("the exec workload failed twice")


def start_agent(work: Path, label: str, policy: Path | None) -> tuple[subprocess.Popen[bytes], Path]:
    log = work / f"agent-{label}.log"
    command = [BINDRIFT, "watch", "--db", f"sqlite:///{work / (label + '.db')}", "--evidence-dir",
               str(work / f"evidence-{label}")]  # fmt: skip
    if policy is not None:
        command += ["--policy", str(policy)]
    with log.open("w") as err:
        agent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    while "agent started" not in log.read_text():
        if agent.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.05)
    return agent, log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    execs, rounds = (300, 2) if args.quick else (2_000, 5)
    work = Path(tempfile.mkdtemp(prefix="bindrift-prevent-bench-"))
    (work / "execlat.c").write_text(EXECLAT)
    subprocess.run(["gcc", "-O2", "-static", "-o", str(work / "execlat"), str(work / "execlat.c")], check=True)
    podman = make_podman(work / "podman")
    rootfs = busybox_rootfs_tar(BUSYBOX, work / "rootfs.tar", {"/opt/execlat": work / "execlat"})
    podman("import", "--change", 'CMD ["/bin/sh"]', str(rootfs), "localhost/bdprevbench:latest")
    name = f"bdprevbench-{work.name[-8:]}"
    policy = work / "policy.toml"
    policy.write_text(f'[[policy]]\nid = "bench"\nmode = "prevent"\ncontainer = "{name}"\ndrift = true\n')
    latencies: dict[str, list[float]] = {}
    try:
        cid = podman("run", "-d", "--name", name, "localhost/bdprevbench:latest", "sleep", "3600").strip()
        measure(podman, cid, 100)  # warm up
        for _round in range(rounds):  # configurations interleaved, so a change in the machine's load hits all
            for label, policy_file in (("without agent", None), ("alert", None), ("prevent", policy)):
                agent, log = start_agent(work, label, policy_file) if label != "without agent" else (None, None)
                if log is not None:
                    wanted = f"preventing in container {cid}" if policy_file else f"watching container {cid}"
                    while wanted not in log.read_text():
                        time.sleep(0.02)
                latencies.setdefault(label, []).extend(measure(podman, cid, execs))
                if agent is not None:
                    agent.terminate()
                    agent.wait(timeout=30)
    finally:
        podman.reset()
        shutil.rmtree(work, ignore_errors=True)
    base = latencies["without agent"]
    results: dict[str, float] = {}
    print(f"\n{rounds} × {execs} execs of /bin/true in one container, spawn to exit, milliseconds\n")
    print("| configuration | p50 | p99 | mean | p50 ratio | p99 ratio | p50 added | p99 added |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, values in latencies.items():
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        b50, b99 = percentile(base, 0.5), percentile(base, 0.99)
        results |= {f"{label} p50 ms": p50, f"{label} p99 ms": p99, f"{label} mean ms": statistics.fmean(values)}
        print(f"| {label} | {p50:.3f} | {p99:.3f} | {statistics.fmean(values):.3f} | {p50 / b50:.2f}× | "
              f"{p99 / b99:.2f}× | {p50 - b50:+.3f} | {p99 - b99:+.3f} |")  # fmt: skip
    added = percentile(latencies["prevent"], 0.99) - percentile(base, 0.99)
    over_alert = percentile(latencies["prevent"], 0.99) - percentile(latencies["alert"], 0.99)
    results |= {"prevent p99 added over no agent ms": added, "prevent p99 added over alert ms": over_alert}
    verdict = "met" if added <= 2 else "NOT met"
    print(f"\nprevent mode adds {added:+.3f} ms at p99 over no agent (target ≤ 2 ms: {verdict}), "
          f"{over_alert:+.3f} ms over alert mode")  # fmt: skip
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "prevent.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
