"""Input adapter throughput, whole process: `bindrift ingest --from TOOL --check FILE` (read, sniff, parse, filter,
count every line, print the summary) against a bare loop over the same file in its own process, in the same
run — `orjson.loads` per line for the JSON tools, `line.split()` for auditd.

The files are built from the real samples in ../shared/samples (read at run time, never copied): each
sample event is a template whose times, pids and container ids vary line by line, mixed so that 30–50% of
the lines are kept (the rest are the other event kinds of the same samples: Falco's connect and read
alerts, Tetragon's exits, connects and non-write kprobes, Tracee's opens, reads and packets, auditd's
non-exec syscalls and user-space records). Falco alerts gain the `evt.type` field current Falco writes; the
auditd groups are the sample's two execs with their arguments cut to a usual length (one in 20 keeps the
sample's 48 or 216), plus openat groups and PAM records built in the same format.

CPU time of each child process (user + system, from getrusage): the machine is shared, wall time would count
other processes. Median of N runs.

Usage: .venv/bin/python bench/ingest.py [--lines N] [--runs N] [--quick] [--tool falco|tetragon|tracee|auditd]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"
BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
TARGET = 300_000
KEPT_SHARE = 0.4
STARTUPS = 10
PEERS = {
    "json": "import orjson, sys\nfor line in open(sys.argv[1], 'rb'):\n    orjson.loads(line)",
    "split": "import sys\nfor line in open(sys.argv[1], 'rb'):\n    line.split()",
}


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _files(pattern: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(SAMPLES.glob(pattern))]


def falco_templates() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, ignored): the sample's shell alerts (execve), and its K8s API alerts (connect); a write below a
    binary dir and a sensitive read, as the same alerts with the fields of those rules."""
    alerts = _json_lines(SAMPLES / "falco" / "falco-website-syscall-alerts.jsonl")
    shells = [a for a in alerts if a["rule"] == "Terminal shell in container"]
    kept, ignored = [], []
    for alert in shells:
        alert["output_fields"]["evt.type"] = "execve"
        kept.append(alert)
        write = json.loads(json.dumps(alert))
        write["rule"] = "Write below binary dir"
        write["output_fields"] |= {"evt.type": "openat", "evt.is_open_write": True, "fd.name": "/usr/bin/kubectl"}
        kept.append(write)
        read = json.loads(json.dumps(alert))
        read["rule"] = "Read sensitive file untrusted"
        read["output_fields"] |= {"evt.type": "openat", "evt.is_open_write": False, "fd.name": "/etc/shadow"}
        ignored.append(read)
    for alert in alerts:
        if alert["rule"].startswith("Contact K8S API"):
            alert["output_fields"] |= {"evt.type": "connect", "fd.name": "10.0.0.7:43312->10.96.0.1:443"}
            ignored.append(alert)
    for alerts_ in (kept, ignored):
        for alert in alerts_:
            alert["output_fields"] = dict(sorted(alert["output_fields"].items()))  # Falco sorts the fields
    return kept, ignored


CONTAINERS = [f"{random.Random(n).getrandbits(256):064x}" for n in range(150)]  # the containers of a busy node


def _vary_falco(alert: dict[str, Any], i: int, rng: random.Random) -> None:
    fields = alert["output_fields"]
    fields["evt.time"] = 1783763098682419669 + i * 1000
    fields["container.id"] = rng.choice(CONTAINERS)[:12]
    fields["proc.pid"] = 40000 + i % 20000


def tetragon_templates() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, ignored): every exec of the samples; exits, connects, closes, listens and the kprobes that are
    not writes."""
    events = _json_lines(SAMPLES / "tetragon" / "testdata-events.jsonl") + _files("tetragon/ebpf-book/*.json")
    events += _files("tetragon/docs-content/*.json")
    kept = [e for e in events if "process_exec" in e]
    ignored = [e for e in events if "process_exec" not in e and "process_throttle" not in e]
    return kept, ignored


def _vary_tetragon(event: dict[str, Any], i: int, rng: random.Random) -> None:
    body = next(iter(event.values()))
    if isinstance(body, dict) and isinstance(body.get("process"), dict):
        body["process"]["pid"] = 40000 + i % 20000
    event["time"] = (
        f"2026-07-11T09:{i // 60_000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}{rng.randrange(10**6):06d}Z"
    )


def tracee_templates() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, ignored): the samples' execve, sched_process_exec and dropped-executable signature; their opens,
    reads, packets (but the 19 kB DNS one), clones and closes."""
    events = _json_lines(SAMPLES / "tracee" / "docs-head-events.jsonl")
    events += _json_lines(SAMPLES / "tracee" / "docs-outputs-2023-events.jsonl")
    kept_names = {"execve", "sched_process_exec", "New executable dropped"}
    kept = [e for e in events if e.get("eventName") in kept_names]
    ignored = [e for e in events if e.get("eventName") not in kept_names and len(json.dumps(e)) < 4000]
    return kept, ignored


def _vary_tracee(event: dict[str, Any], i: int, rng: random.Random) -> None:
    event["timestamp"] = 1657290245020855990 + i * 1000
    event["processId"] = event["hostProcessId"] = 40000 + i % 20000
    if "containerId" in event:
        event["containerId"] = rng.choice(CONTAINERS) if event["containerId"] else ""


def auditd_lines(count: int, rng: random.Random) -> list[bytes]:
    """Exec groups from the sample, openat groups and PAM records in the same format, ~40% of lines kept."""
    records = (SAMPLES / "auditd" / "audit-userspace-test4.log").read_text().splitlines()
    groups: dict[str, list[str]] = {}
    for record in records:
        groups.setdefault(record.split("msg=audit(", 1)[1].split(")", 1)[0], []).append(record)
    execs = list(groups.values())
    out: list[bytes] = []
    serial, ms = 30000, 0
    while len(out) < count:
        serial += 1
        ms += rng.randrange(1, 4)
        stamp = f"{1783763098 + ms // 1000}.{ms % 1000:03d}:{serial}"
        pid = 40000 + serial % 20000
        roll = rng.random()
        if roll < 0.22:  # an exec group from the sample
            group = [re.sub(r"msg=audit\([^)]*\)", f"msg=audit({stamp})", r) for r in rng.choice(execs)]
            group = [re.sub(r" pid=\d+", f" pid={pid}", r, count=1) for r in group]
            if rng.random() >= 0.05:
                group = [_cut_args(r, rng.randrange(1, 8)) for r in group]
        elif roll < 0.5:  # a non-exec syscall group: the sample's SYSCALL as openat
            syscall = rng.choice(execs)[0]
            syscall = re.sub(r"syscall=59 success=yes exit=0", "syscall=257 success=yes exit=3", syscall)
            group = [re.sub(r"msg=audit\([^)]*\)", f"msg=audit({stamp})", syscall)]
            group += [f'type=CWD msg=audit({stamp}): cwd="/var/lib/app"',
                      f'type=PATH msg=audit({stamp}): item=0 name="/etc/app/config.yaml" inode=40854 dev=00:30 '
                      "mode=0100644 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 "
                      "cap_frootid=0",
                      f"type=PROCTITLE msg=audit({stamp}): proctitle=2F7573722F62696E2F617070"]  # fmt: skip
        else:  # a PAM record of its own
            kind = rng.choice(["USER_ACCT", "CRED_ACQ", "USER_START", "CRED_DISP", "USER_END"])
            group = [f"type={kind} msg=audit({stamp}): pid={pid} uid=0 auid=4294967295 ses=4294967295 "
                     "subj=unconfined msg='op=PAM:accounting grantors=pam_permit acct=\"root\" exe=\"/usr/sbin/cron\" "
                     "hostname=? addr=? terminal=cron res=success'"]  # fmt: skip
        out += [r.encode() for r in group]
    return out[:count]


def _cut_args(record: str, keep: int) -> str:
    """An EXECVE record with its first `keep` arguments; a PROCTITLE cut to the kernel's 128 bytes."""
    if " type=EXECVE " in f" {record}" or record.startswith("type=EXECVE"):
        head, _, body = record.partition("): ")
        args = re.findall(r'a(\d+)=("[^"]*"|\S+)', body)[:keep]
        return f"{head}): argc={len(args)} " + " ".join(f"a{n}={v}" for n, v in args)
    if record.startswith("type=PROCTITLE"):
        head, _, value = record.partition("proctitle=")
        return f"{head}proctitle={value[:256]}"
    return record


TOOLS: dict[str, tuple[Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]],
                       Callable[[dict[str, Any], int, random.Random], None]]] = {
    "falco": (falco_templates, _vary_falco),
    "tetragon": (tetragon_templates, _vary_tetragon),
    "tracee": (tracee_templates, _vary_tracee),
}  # fmt: skip


def generate(tool: str, path: Path, lines: int, seed: int) -> None:
    rng = random.Random(seed)
    if tool == "auditd":
        path.write_bytes(b"\n".join(auditd_lines(lines, rng)) + b"\n")
        return
    make, vary = TOOLS[tool]
    kept, ignored = make()
    with path.open("wb") as fh:
        for i in range(lines):
            event = rng.choice(kept if rng.random() < KEPT_SHARE else ignored)
            vary(event, i, rng)
            fh.write(orjson.dumps(event) + b"\n")


def child_cpu(command: list[str]) -> tuple[float, str]:
    """(user + system CPU seconds of the child, its stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{command} failed: {result.stderr[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), result.stderr


def breakdown(tool: str, path: Path) -> str:
    """Where an adapter's time goes, in process, µs a line: finding the lines, the typed decode of every line
    (auditd: the header regex), the raw-byte filter alone, and the whole adapter (feed_lines)."""
    import contextlib
    import importlib
    import io
    import time

    from bindrift.sensors.ingest.reader import make_adapter, read_events

    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    module = importlib.import_module(f"bindrift.sensors.ingest.{tool}")
    decode = module._RECORD.match if tool == "auditd" else module._DECODER.decode
    raw = getattr(module, "_filtered_raw", None)

    def timed(work: Callable[[], object]) -> float:
        started = time.process_time()
        work()
        return (time.process_time() - started) / len(lines) * 1e6

    def decode_all() -> None:
        for line in lines:
            with contextlib.suppress(Exception):  # a line the typed decode refuses is timed all the same
                decode(line)

    def adapt() -> None:  # events dropped as they come, as `--check` does (kept, they would be GC work)
        adapter = make_adapter(tool)  # type: ignore[arg-type]
        for _event in read_events(io.BytesIO(data), adapter):
            pass

    parts = [("lines", timed(lambda: sum(1 for _ in io.BytesIO(data)))), ("decode", timed(decode_all))]
    if raw is not None:
        parts.append(("raw filter", timed(lambda: [raw(line) for line in lines])))
    parts.append(("adapter", timed(adapt)))
    return ", ".join(f"{name} {us:.2f}" for name, us in parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tool", choices=["falco", "tetragon", "tracee", "auditd"], action="append")
    parser.add_argument("--quick", action="store_true", help="60,000 lines, one run")
    parser.add_argument("--breakdown", action="store_true", help="also where the time goes, in process")
    args = parser.parse_args()
    lines, runs = (60_000, 1) if args.quick else (args.lines, args.runs)
    print(f"{lines:,} lines per file, whole process, CPU time (user + system), median of {runs}")
    print(f"{'tool':<9} {'bytes/line':>10} {'kept':>6} {'peer':<14} {'peer lines/s':>13} {'bindrift lines/s':>17} "
          f"{'ratio':>6}  target")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for tool in args.tool or ["falco", "tetragon", "tracee", "auditd"]:
            path = Path(tmp) / f"{tool}.log"
            generate(tool, path, lines, args.seed)
            peer = PEERS["split" if tool == "auditd" else "json"]
            ours_command = [BINDRIFT, "ingest", "--from", tool, "--check", str(path)]
            peer_times, our_times, summary = [], [], ""
            for _ in range(runs):
                peer_times.append(child_cpu([sys.executable, "-c", peer, str(path)])[0])
                elapsed, summary = child_cpu(ours_command)
                our_times.append(elapsed)
            peer_s, ours_s = statistics.median(peer_times), statistics.median(our_times)
            counted = re.search(r"(\d+) lines read, (\d+) events kept, (\d+) rejected, (\d+) ignored", summary)
            assert counted is not None and int(counted.group(1)) == lines, summary
            read, _kept_events, rejected, ignored = (int(g) for g in counted.groups())
            assert rejected == 0, summary
            kept_share = (read - ignored) / read
            rate = lines / ours_s
            print(f"{tool:<9} {path.stat().st_size / lines:>10.0f} {kept_share:>6.0%} "
                  f"{'split' if tool == 'auditd' else 'orjson.loads':<14} {lines / peer_s:>13,.0f} {rate:>17,.0f} "
                  f"{peer_s / ours_s:>5.2f}x  {'met' if rate >= TARGET else 'NOT met'}")  # fmt: skip
            if args.breakdown:
                print(f"{'':<9} µs a line in process: {breakdown(tool, path)}")
    startup = statistics.median(
        child_cpu([BINDRIFT, "ingest", "--from", "falco", "--check", "/dev/null"])[0] for _ in range(STARTUPS)
    )
    print(f"process start-up (bindrift ingest --check of an empty file, median of {STARTUPS}): {startup:.3f} CPU s")


if __name__ == "__main__":
    main()
