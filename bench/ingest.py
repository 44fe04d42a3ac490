"""Input adapter throughput: bindrift's Falco parse + filter against a bare orjson loop over the same file.

Generates seeded files of Falco alerts shaped as Falco 0.41+ writes them (container plugin fields on
every rule, sorted keys, the `output` text): a mix (30% executions and writes, the rest other syscall rules
and reads), only the filtered kinds, and only executions and writes. Times each on one core in CPU time
(the machine is shared: wall time would count other processes), median of N:

- peer: `for line in file: orjson.loads(line)`;
- bindrift: `bindrift.sensors.ingest.reader.read_events` with the Falco adapter (bounded reads, the raw-byte
  filter, typed decode of the used fields, exec/write filter, normalised events).

Usage: .venv/bin/python bench/ingest.py [--lines N] [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from bindrift.sensors.ingest.falco import FalcoAdapter
from bindrift.sensors.ingest.reader import read_events

RULES = [  # (rule, evt.type, share)
    ("Contact K8S API Server From Container", "connect", 0.30),
    ("Read sensitive file untrusted", "openat", 0.25),
    ("Outbound Connection to C2 Servers", "connect", 0.10),
    ("Terminal shell in container", "execve", 0.15),
    ("Drop and execute new binary in container", "execve", 0.05),
    ("Write below binary dir", "openat", 0.10),
    ("Redirect STDOUT/STDIN to Network Connection in Container", "dup2", 0.05),
]
KEPT_RULES = {"Terminal shell in container", "Drop and execute new binary in container", "Write below binary dir"}
CONTAINERS = 150  # containers on the node the alerts come from


def alert(rng: random.Random, index: int, containers: list[str], rules: list[tuple[str, str, float]]) -> bytes:
    rule, evt_type = rng.choices([(r, t) for r, t, _ in rules], weights=[w for _, _, w in rules])[0]
    cid = rng.choice(containers)
    exe = rng.choice(["/usr/bin/curl", "/bin/sh", "/tmp/kinsing", "/usr/sbin/nginx", "/bin/busybox"])
    fields: dict[str, object] = {
        "container.id": cid, "container.image.repository": "docker.io/library/nginx", "container.image.tag": "1.27",
        "container.name": f"web-{index % 97}", "evt.time": 1783763098682419669 + index * 1000, "evt.type": evt_type,
        "k8s.ns.name": "shop", "k8s.pod.name": f"web-7d9c-{index % 1000:05d}", "proc.cmdline": f"{exe} -c x",
        "proc.exepath": exe, "proc.name": exe.rsplit("/", 1)[-1], "proc.pid": 40000 + index % 20000,
        "proc.pname": "bash", "user.loginuid": -1, "user.name": "root", "user.uid": 0,
    }  # fmt: skip
    if evt_type == "execve":
        fields |= {"evt.arg.flags": "EXE_WRITABLE|EXE_UPPER_LAYER", "proc.is_exe_upper_layer": rule.startswith("Drop"),
                   "proc.exe_ino.ctime_duration_proc_start": 18446744073670260079}  # fmt: skip
    elif evt_type == "openat":
        fields |= {"fd.name": rng.choice(["/etc/shadow", "/usr/bin/ls", "/tmp/x"]),
                   "evt.is_open_write": rule.startswith("Write")}  # fmt: skip
    else:
        fields |= {"fd.name": f"10.0.{index % 255}.{index % 7}:443->10.96.0.1:443"}
    output = f"09:44:58.682419669: Critical {rule} (user=root container={cid} image=docker.io/library/nginx)"
    record = {"hostname": "node-a", "output": output, "output_fields": dict(sorted(fields.items())),
              "priority": "Critical", "rule": rule, "source": "syscall",
              "tags": ["PCI_DSS_11.5.1", "TA0003", "container", "maturity_stable", "mitre_persistence", "process"],
              "time": "2026-07-11T09:44:58.682419669Z"}  # fmt: skip
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def generate(path: Path, lines: int, seed: int, rules: list[tuple[str, str, float]]) -> int:
    rng = random.Random(seed)
    containers = [f"{rng.getrandbits(48):012x}" for _ in range(CONTAINERS)]
    with path.open("wb") as fh:
        for index in range(lines):
            fh.write(alert(rng, index, containers, rules))
    return path.stat().st_size


def peer(path: Path) -> tuple[float, int]:
    started = time.process_time()
    count = 0
    with path.open("rb") as fh:
        for line in fh:
            orjson.loads(line)
            count += 1
    return time.process_time() - started, count


def bindrift(path: Path) -> tuple[float, int]:
    adapter = FalcoAdapter()
    started = time.process_time()
    with path.open("rb") as fh:
        kept = sum(1 for _event in read_events(fh, adapter))
    elapsed = time.process_time() - started
    assert adapter.stats.rejected == 0 and adapter.stats.kept == kept
    return elapsed, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="40,000 lines, one run")
    args = parser.parse_args()
    lines, runs = (40_000, 1) if args.quick else (args.lines, args.runs)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target is stated
    mixes = {"mixed": RULES, "filtered only": [r for r in RULES if r[0] not in KEPT_RULES],
             "exec/write only": [r for r in RULES if r[0] in KEPT_RULES]}  # fmt: skip
    print(f"{lines:,} Falco alerts per file, median of {runs}, one core")
    print(f"{'file':<16} {'bytes/line':>10} {'kept':>8} {'orjson loop (peer)':>20} {'bindrift':>14} {'ratio':>7}")
    mixed_rate = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, rules in mixes.items():
            path = Path(tmp) / "falco.jsonl"
            size = generate(path, lines, args.seed, rules)
            peer(path)  # warm the page cache
            peer_times, ours, kept = [], [], 0
            for _ in range(runs):
                peer_times.append(peer(path)[0])
                elapsed, kept = bindrift(path)
                ours.append(elapsed)
            peer_s, ours_s = statistics.median(peer_times), statistics.median(ours)
            mixed_rate = mixed_rate or lines / ours_s
            rates = f"{lines / peer_s:>14,.0f} l/s {lines / ours_s:>10,.0f} l/s {peer_s / ours_s:>6.2f}x"
            print(f"{name:<16} {size / lines:>10.0f} {kept:>8,} {rates}")
    print(f"target >= 500,000 lines/s per core on the mixed file: {'met' if mixed_rate >= 500_000 else 'not met'}")


if __name__ == "__main__":
    main()
