"""Overlay layers from mountinfo, escapes included."""

from __future__ import annotations

from bindrift.context.mountinfo import overlay_root

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
