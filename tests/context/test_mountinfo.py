"""Overlay layers from mountinfo, escapes included."""

from __future__ import annotations

from bindrift.context.mountinfo import MAX_WATCHED_MOUNTS, overlay_root, writable_mounts

LINE = (
    "81 53 0:42 / / rw,relatime - overlay overlay rw,lowerdir=/s/l/A\\054x:/s/l/B,upperdir=/s/o/with\\040space/diff,"
    "workdir=/s/o/w,uuid=on\n"
    "82 81 0:5 / /dev rw - tmpfs tmpfs rw\n"
)


def test_overlay_root_with_escaped_paths() -> None:
    root = overlay_root(LINE)
    assert root is not None
    assert root.upper == "/s/o/with space/diff"
    assert root.lowers == ["/s/l/A,x", "/s/l/B"]


def test_not_overlay_or_no_upper() -> None:
    assert overlay_root("1 0 0:1 / / rw - ext4 /dev/vda rw\n") is None
    assert overlay_root("1 0 0:1 / / rw - overlay overlay rw,lowerdir=/a:/b\n") is None, "read-only overlay"
    assert overlay_root("") is None


# A podman container's mountinfo (a volume at /data with a space, /dev/shm, /etc/hosts bound from the host).
CONTAINER = """74 50 0:40 / / rw,relatime - overlay overlay rw,lowerdir=/s/l/A,upperdir=/s/o/u/diff,workdir=/s/o/u/work
75 74 254:0 /srv/vol /my\\040data rw,relatime - ext4 /dev/vda rw,discard
79 74 0:43 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
80 74 0:44 / /dev rw,nosuid,noexec - tmpfs tmpfs rw,size=65536k,mode=755
81 74 0:45 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
83 80 0:46 / /dev/shm rw,nosuid,nodev,relatime - tmpfs shm rw,size=65536k
82 80 0:47 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620,ptmxmode=666
84 80 0:42 / /dev/mqueue rw,nosuid,nodev,noexec,relatime - mqueue mqueue rw
85 74 254:0 /run/u/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw,discard
86 74 254:0 /srv/ro /ro ro,relatime - ext4 /dev/vda rw,discard
88 81 0:48 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755
55 79 0:49 / /proc/acpi ro,relatime - tmpfs tmpfs ro
56 79 0:44 /null /proc/keys rw,nosuid,noexec - tmpfs tmpfs rw,size=65536k,mode=755
"""


def test_writable_mounts_of_a_container() -> None:
    mounts, beyond = writable_mounts(CONTAINER)
    assert beyond == 0
    assert [(m.mount_id, m.mountpoint, m.fstype, m.source, m.kind) for m in mounts] == [
        (74, "/", "overlay", "overlay", "root"),
        (75, "/my data", "ext4", "/dev/vda", "volume"),
        (80, "/dev", "tmpfs", "tmpfs", "tmpfs"),
        (83, "/dev/shm", "tmpfs", "shm", "tmpfs"),
        (85, "/etc/hosts", "ext4", "/dev/vda", "volume"),
    ]


def test_writable_mounts_are_capped_and_counted() -> None:
    many = "".join(f"{100 + i} 74 0:{100 + i} / /m{i} rw - tmpfs tmpfs rw\n" for i in range(MAX_WATCHED_MOUNTS + 5))
    mounts, beyond = writable_mounts(CONTAINER + many)
    assert len(mounts) == MAX_WATCHED_MOUNTS and beyond == 10  # 5 of the container's own + 5 more than the cap
    assert mounts[0].kind == "root"


def test_malformed_lines_are_skipped() -> None:
    mounts, beyond = writable_mounts("garbage\nx y - z\n74 50 0:40 / / rw - overlay overlay rw\n\xff - \n")
    assert [(m.mount_id, m.kind) for m in mounts] == [(74, "root")] and beyond == 0
