"""The eBPF process sensor with real processes, on the host and in a podman container: every short-lived
exec arrives with its exact argv, uid, cwd, executable and parent; images survive their exit and a reused
pid; a writer gone within a millisecond is named with its arguments."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.containers import busybox_rootfs_tar, make_podman, podman_available

from bindrift.sensors.ebpf.events import Event, ExecEvent, ExitEvent
from bindrift.sensors.ebpf.sensor import EbpfSensor
from bindrift.sensors.runtime.process_table import ProcessTable

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loads a BPF program: needs root")


@pytest.fixture(scope="module")
def sensor() -> Iterator[EbpfSensor]:
    loaded = EbpfSensor()  # no skip when it cannot load: the machines this runs on have BTF and root
    yield loaded
    loaded.close()


def collect(sensor: EbpfSensor, table: ProcessTable | None, done: Callable[[list[Event]], bool],
            timeout: float = 10) -> list[Event]:  # fmt: skip
    """Events until `done(all so far)`, fed to `table` as the agent feeds it."""
    seen: list[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = sensor.read()
        if table is not None:
            table.apply(batch)
        seen.extend(batch)
        if done(seen):
            return seen
        time.sleep(0.01)
    raise AssertionError(f"timed out; {len(seen)} events")


def execs_with(events: list[Event], marker: str) -> list[ExecEvent]:
    return [e for e in events if isinstance(e, ExecEvent) and marker in e.argv]


def test_a_thousand_short_execs_from_a_shell_each_exact(sensor: EbpfSensor, tmp_path: Path) -> None:
    sensor.read()
    marker = f"m{os.getpid()}x{time.monotonic_ns()}"
    shell = subprocess.Popen(["/bin/sh", "-c", f'cd "$1" && for i in $(seq 1000); do /bin/true {marker} "$i" ""; done',
                              "sh", str(tmp_path)])  # fmt: skip
    events = collect(sensor, None, lambda seen: len(execs_with(seen, marker)) >= 1000, timeout=60)
    assert shell.wait(timeout=30) == 0
    execs = execs_with(events, marker)
    assert sorted(int(e.argv[2]) for e in execs) == list(range(1, 1001))
    for event in execs:
        assert event.argv == ["/bin/true", marker, event.argv[2], ""]
        assert event.parent.tgid == shell.pid and event.uid == os.getuid() and event.gid == os.getgid()
        assert event.cwd == str(tmp_path) and event.exe == os.path.realpath("/bin/true")
        st = os.stat("/bin/true")
        assert (event.exe_dev, event.exe_inode) == (st.st_dev, st.st_ino) and not event.truncated
    assert sensor.dropped == 0 and sensor.malformed == 0


def test_long_argv_is_cut_at_the_documented_bound_and_says_so(sensor: EbpfSensor) -> None:
    sensor.read()
    marker = f"long{time.monotonic_ns()}"
    subprocess.run(["/bin/true", marker, "y" * 5000], check=True)
    (event,) = execs_with(collect(sensor, None, lambda seen: bool(execs_with(seen, marker))), marker)
    assert event.truncated and event.argv[:2] == ["/bin/true", marker]
    assert len("\0".join(event.argv)) == 4096 and set(event.argv[2]) == {"y"}


def test_images_keep_identity_across_exit_and_a_reused_pid(sensor: EbpfSensor, tmp_path: Path) -> None:
    """The kernel hands the same pid to a new process (ns_last_pid set to just before it): each image
    keeps its own argv, and a file written by the first is attributed to it, not to the pid's new owner."""
    table = ProcessTable()
    sensor.read()
    first = subprocess.run(["/bin/sh", "-c", 'echo x > "$1"; echo $$', "sh", str(tmp_path / "written")],
                           capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(first.stdout)
    written = os.stat(tmp_path / "written")
    time.sleep(0.02)  # past the coarse clock's tick: the new process starts visibly after the write
    second = None
    for _ in range(20):  # another process on the machine may take the pid first: try again
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        second = subprocess.Popen(["/bin/sleep", "5", "reuser"])
        if second.pid == pid:
            break
        second.kill()
        second.wait()
        second = None
    assert second is not None, "the pid could not be reused"
    try:
        collect(sensor, table, lambda seen: any(isinstance(e, ExecEvent) and e.argv[-1:] == ["reuser"]
                                                and e.image.tgid == pid for e in seen))  # fmt: skip
        now = table.get(pid)
        assert now is not None and now.args == ["/bin/sleep", "5", "reuser"] and now.context_source == "ebpf"
        writer = table.writer(pid, str(tmp_path / "written"), written)
        assert (
            writer is not None and writer.args[:2] == ["/bin/sh", "-c"] and writer.args[-1] == str(tmp_path / "written")
        )
        assert writer.pid == pid and writer.lineage and writer.lineage[0].pid == os.getpid()
    finally:
        second.kill()
        second.wait()


def test_a_writer_gone_within_a_millisecond_is_named_with_its_arguments(sensor: EbpfSensor, tmp_path: Path) -> None:
    table = ProcessTable()
    sensor.read()
    target = tmp_path / "copied"
    script = f'cd "$1" && /bin/cp /bin/true {target.name} && ./{target.name} ran'
    subprocess.run(["/bin/sh", "-c", script, "sh", str(tmp_path)], check=True)
    events = collect(sensor, table, lambda seen: bool(execs_with(seen, "ran")))
    (cp,) = [e for e in events if isinstance(e, ExecEvent) and e.argv[:1] == ["/bin/cp"] and target.name in e.argv]
    cp_exit = next(e for e in events if isinstance(e, ExitEvent) and e.image == cp.image)
    assert cp_exit.ts_ns - cp.ts_ns < 50_000_000  # short-lived (typically well under 1 ms of its own work)
    writer = table.writer(cp.image.tgid, str(target), os.stat(target))
    assert writer is not None and writer.args == ["/bin/cp", "/bin/true", target.name]
    assert writer.cwd == str(tmp_path) and writer.lineage[0].args[:2] == ["/bin/sh", "-c"]
    # The shell that wrote nothing but ran the file: the process running it is the copy, exactly.
    runner = table.running(execs_with(events, "ran")[0].image.tgid, os.stat(target))
    assert runner is not None and runner.args == [f"./{target.name}", "ran"]


def test_lineage_is_each_ancestor_as_it_was_when_its_child_started(sensor: EbpfSensor) -> None:
    """The parent shell execs something else after starting its child: the child's lineage still names the
    shell as it was."""
    table = ProcessTable()
    sensor.read()
    marker = f"lin{time.monotonic_ns()}"
    script = f"/bin/true {marker} & exec /bin/true after-{marker}"
    subprocess.run(["/bin/sh", "-c", script], check=True)
    events = collect(
        sensor, table, lambda seen: bool(execs_with(seen, f"after-{marker}")) and bool(execs_with(seen, marker))
    )
    (child,) = execs_with(events, marker)
    got = table.running(child.image.tgid, os.stat("/bin/true"))
    assert got is not None and got.args == ["/bin/true", marker]
    assert got.lineage[0].args == ["/bin/sh", "-c", script] and got.lineage[1].pid == os.getpid()


@pytest.mark.skipif(not podman_available(), reason="needs podman, as root")
def test_execs_in_a_podman_container(sensor: EbpfSensor, tmp_path_factory: pytest.TempPathFactory,
                                     test_binaries: Path) -> None:  # fmt: skip
    work = tmp_path_factory.mktemp("ebpfpod")
    podman = make_podman(work / "podman")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_rootfs_tar(busybox, work / "rootfs.tar")),
           "localhost/bdebpf:latest")  # fmt: skip
    cid = podman("run", "-d", "--name", f"bdebpf-{os.getpid()}", "localhost/bdebpf:latest", "sleep", "300").strip()
    table = ProcessTable()
    try:
        init = int(podman("inspect", "-f", "{{.State.Pid}}", cid).strip())
        sensor.read()
        marker = f"pod{time.monotonic_ns()}"
        podman(
            "exec",
            "--user",
            "1000:1001",
            cid,
            "sh",
            "-c",
            f'cd /tmp && for i in 1 2 3; do /bin/echo {marker} "a b" ""; done',
        )
        events = collect(sensor, table, lambda seen: len(execs_with(seen, marker)) == 3)
        pid_ns = os.stat(f"/proc/{init}/ns/pid").st_ino
        for event in execs_with(events, marker):
            assert event.argv == ["/bin/echo", marker, "a b", ""] and event.cwd == "/tmp"
            assert (event.uid, event.gid, event.pid_ns) == (1000, 1001, pid_ns) and event.exe == "/bin/busybox"
            assert event.mnt_ns == os.stat(f"/proc/{init}/ns/mnt").st_ino and event.ns_pid != event.image.tgid
            got = table.get(event.image.tgid, init)
            assert got is not None and got.lineage[0].comm == "sh" and got.lineage[0].args[-1].endswith('""; done')
            assert table.namespace(event.image.tgid) == os.readlink(f"/proc/{init}/ns/pid")
    finally:
        podman("rm", "-f", "-t", "0", cid)
        podman.reset()


def test_start_time_is_the_one_procfs_shows(sensor: EbpfSensor) -> None:
    """The responder re-identifies a finding's process by its start time read from /proc: the time captured
    in the kernel must be that same value, or every kill of an eBPF-sourced finding would be refused."""
    from bindrift.sensors.runtime.process_table import snapshot

    table = ProcessTable()
    sensor.read()
    marker = f"start{time.monotonic_ns()}"
    sleeper = subprocess.Popen(["/bin/sleep", "30", marker])
    try:
        collect(sensor, table, lambda seen: bool(execs_with(seen, marker)))
        captured = table.get(sleeper.pid)
        seen = snapshot(sleeper.pid)
        assert captured is not None and seen is not None
        assert captured.context_source == "ebpf" and captured.args == ["/bin/sleep", "30", marker]
        assert captured.start_time is not None and captured.start_time == seen[0].start_time
    finally:
        sleeper.kill()
        sleeper.wait()
