"""audit.log → exec events: the real records in ../shared/samples/auditd, and records constructed in the
exact format auditd writes for what the sample lacks (hex-encoded values, split long arguments across
records, `node=` prefixes, ENRICHED names, EOE, failed and non-exec syscalls), said so at each."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import SHARED

from bindrift.schema.external_event import ExternalEvent, ExternalProcess
from bindrift.sensors.ingest import auditd
from bindrift.sensors.ingest.auditd import AuditdAdapter, decode_value
from bindrift.sensors.ingest.common import MalformedEventError
from bindrift.sensors.ingest.reader import read_events

SAMPLE = SHARED / "samples" / "auditd" / "audit-userspace-test4.log"


def _read(data: bytes) -> tuple[list[ExternalEvent], AuditdAdapter]:
    adapter = AuditdAdapter()
    return list(read_events(io.BytesIO(data), adapter)), adapter


def test_sample_every_field() -> None:
    events, adapter = _read(SAMPLE.read_bytes())
    assert (adapter.stats.lines, adapter.stats.kept, adapter.stats.rejected) == (13, 2, 0)
    sh, m4 = events
    assert len(sh.process.args) == 48 and sh.process.args[:4] == ["/bin/sh", "-efu", "/usr/bin/ld", "-plugin"]
    assert sh.process.args[-1] == "/usr/lib64/gcc/aarch64-alt-linux/8/../../../../lib64/crtn.o"
    assert sh == ExternalEvent(
        tool="auditd", kind="exec", time_ns=1655465398534000000, path="/bin/sh4",  # `exe` as the kernel wrote it
        process=ExternalProcess(pid=105183, comm="ld", exe="/bin/sh4", args=sh.process.args,
                                cwd="/usr/src/RPM/BUILD/zlib-1.2.11-alt1", uid=583),
        parents=[ExternalProcess(pid=105182)], node="", source_event="SYSCALL 59",
        facts={"stamp": "1655465398.534:25618", "arch": "c000003e", "syscall": 59, "auid": 573, "key": "(null)",
               "argc": 48, "tty": "pts2", "path_name": "/usr/bin/ld"},
    )  # fmt: skip
    assert (m4.path, m4.process.pid, m4.process.comm, len(m4.process.args), m4.process.args[-1], m4.time_ns) == (
        "/usr/bin/m4", 105933, "m4", 216, "configure.ac", 1655465404819000000)  # fmt: skip
    assert m4.process.cwd == "/usr/src/RPM/BUILD/zlib-1.2.11-alt1/contrib/minizip"
    assert m4.parents == [ExternalProcess(pid=105932)] and "path_name" not in m4.facts


# Constructed: formats.md §4's kinsing exec, with a node= prefix, a hex-encoded argument (it holds a
# space), a long argument split into a2[0]/a2[1] across two EXECVE records, ENRICHED names after 0x1D, and EOE.
STAMP = "msg=audit(1783763098.682:4711):"
KINSING = "\n".join([
    f"node=node-a type=SYSCALL {STAMP} arch=c000003e syscall=59 success=yes exit=0 a0=55d0c1a2b3c0 a1=55d0c1a2b400 "
    "a2=55d0c1a2b420 a3=0 items=2 ppid=48100 pid=48211 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 "
    'sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="kinsing" exe="/tmp/kinsing" key="exec"'
    '\x1dARCH=x86_64 SYSCALL=execve AUID="unset" UID="root"',
    f'node=node-a type=EXECVE {STAMP} argc=4 a0="/tmp/kinsing" a1="-c" a2_len=12 a2[0]=2F746D702F',
    f"node=node-a type=EXECVE {STAMP} a2[1]=6B20636667 a3=E282AC",
    f"node=node-a type=CWD {STAMP} cwd=2F746D702F776F726B20646972",
    f'node=node-a type=PATH {STAMP} item=0 name="/tmp/kinsing" inode=1311 dev=00:2e mode=0100755 ouid=0 ogid=0 '
    "rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    f"node=node-a type=PROCTITLE {STAMP} proctitle=2F746D702F6B696E73696E67002D63002F746D702F6B20636667",
    f"node=node-a type=EOE {STAMP}",
]).encode() + b"\n"  # fmt: skip
FAILED_AND_OTHER = "\n".join([
    'type=SYSCALL msg=audit(1783763099.000:4712): arch=c000003e syscall=59 success=no exit=-2 items=1 ppid=1 pid=2 '
    'uid=0 comm="sh" exe="/bin/sh" key="exec"',
    'type=SYSCALL msg=audit(1783763099.100:4713): arch=c000003e syscall=2 success=yes exit=3 items=1 ppid=1 pid=2 '
    'uid=0 comm="sh" exe="/bin/sh" key="open"',
    "type=SYSCALL msg=audit(1783763099.200:4714): arch=c00000b7 syscall=221 success=yes exit=0 items=1 ppid=1 pid=77 "
    'uid=1000 comm="ls" exe="/usr/bin/ls" key="exec"',
    'type=PROCTITLE msg=audit(1783763099.200:4714): proctitle="ls"',
]).encode()  # fmt: skip


def test_encoded_split_and_enriched_records() -> None:
    events, adapter = _read(KINSING)
    assert adapter.stats.kept == 1
    assert events[0] == ExternalEvent(
        tool="auditd", kind="exec", time_ns=1783763098682000000, path="/tmp/kinsing",
        process=ExternalProcess(pid=48211, comm="kinsing", exe="/tmp/kinsing",
                                args=["/tmp/kinsing", "-c", "/tmp/k cfg", "€"], cwd="/tmp/work dir", uid=0),
        parents=[ExternalProcess(pid=48100)], node="node-a", source_event="SYSCALL 59",
        facts={"stamp": "1783763098.682:4711", "arch": "c000003e", "syscall": 59, "auid": 4294967295, "key": "exec",
               "argc": 4, "tty": "(none)"},
    )  # fmt: skip


def test_failed_and_non_exec_filtered_aarch64_kept_proctitle_fallback() -> None:
    events, adapter = _read(FAILED_AND_OTHER)
    assert (adapter.stats.lines, adapter.stats.kept) == (4, 1)
    assert [(e.path, e.process.pid, e.process.args, e.facts["arch"]) for e in events] == [
        ("/usr/bin/ls", 77, ["ls"], "c00000b7")]  # fmt: skip


def test_groups_complete_once_newer_records_arrive() -> None:
    adapter = AuditdAdapter()
    first = adapter.feed(b'type=SYSCALL msg=audit(100.000:1): arch=c000003e syscall=59 success=yes pid=5 exe="/a"')
    later = adapter.feed(b'type=SYSCALL msg=audit(101.000:2): arch=c000003e syscall=59 success=yes pid=6 exe="/b"')
    flushed_by_time = adapter.feed(b'type=CWD msg=audit(102.500:3): cwd="/"')
    assert (first, later) == ([], []) and [e.path for e in flushed_by_time] == ["/a"]
    assert [e.path for e in adapter.flush()] == ["/b"]  # the end of the input completes the rest; 3 has no SYSCALL


def test_values_and_malformed_lines() -> None:
    assert decode_value(b"59") == "59" and decode_value(b"(null)") == "(null)"
    assert decode_value(b"414243", encoded=True) == "ABC" and decode_value(b'"x y"') == "x y"
    with pytest.raises(MalformedEventError):
        AuditdAdapter().feed(b"type=SYSCALL msg=audit(garbage): arch=c000003e")
    events, adapter = _read(b"hello\n\xff\xfe\n" + KINSING)
    assert len(events) == 1 and (adapter.stats.lines, adapter.stats.rejected) == (9, 2)


LAYOUT = ["arch", "syscall", "success", "exit", "a0", "a1", "a2", "a3", "items", "ppid", "pid", "auid", "uid", "gid",
          "euid", "suid", "fsuid", "egid", "sgid", "fsgid", "tty", "ses", "comm", "exe", "subj", "key"]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(["c000003e", "59", "yes", "0", "(null)", "(none)", '"sh"', '"a b"', '"/usr/bin/x"', "", '"',
                     '"x', 'x"', "a=b", '"a" exe="b"', "2F746D70", "\x1dARCH=x86_64"]),
    st.text(st.sampled_from('ab =""\x1d'), max_size=6),
)  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(LAYOUT), VALUES), max_size=4), st.data())
def test_the_syscall_layout_reads_what_the_fields_read(changes: list[tuple[str, str]], data: st.DataObject) -> None:
    """The one-match read of a SYSCALL record (the kernel's layout) gives the fields the general reader gives, on
    the sample's records with values changed, fields dropped, reordered or repeated."""
    fields = dict(field.split("=", 1) for field in SAMPLE.read_text().splitlines()[0].split("): ", 1)[1].split(" "))
    fields.update(changes)
    keys = list(fields)
    if data.draw(st.booleans()):
        keys = data.draw(st.lists(st.sampled_from(LAYOUT), max_size=30))
    body = " ".join(f"{key}={fields.get(key, '1')}" for key in keys).encode()
    general = auditd._fields(body)
    expected = tuple(general.get(key) for key in auditd.SYSCALL_KEYS) if general else ()
    assert auditd._syscall_fields(body) == expected


def test_the_sample_syscalls_take_the_layout() -> None:
    bodies = [line.split(b"): ", 1)[1] for line in SAMPLE.read_bytes().splitlines() if line.startswith(b"type=SYSCALL")]
    assert bodies and all(auditd._SYSCALL_LAYOUT.fullmatch(body) for body in bodies)


def test_groups_over_the_bound_complete_oldest_first() -> None:
    """Records of one second (no group due by time): past MAX_PENDING open groups, the oldest completes."""
    adapter = AuditdAdapter()
    done = []
    for serial in range(auditd.MAX_PENDING + 50):
        line = f'type=SYSCALL msg=audit(100.000:{serial}): arch=c000003e syscall=59 success=yes pid={serial} exe="/a"'
        done += adapter.feed(line.encode())
        assert len(adapter._pending) <= auditd.MAX_PENDING
    assert [e.process.pid for e in done] == list(range(50))
    assert len(adapter.flush()) == auditd.MAX_PENDING
