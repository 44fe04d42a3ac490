"""Executions that fanotify's per-container marks do not see as an exec of an upper-layer file: through
the dynamic loader (`ld-linux.so ./added`), from a tmpfs such as /dev/shm, or from memory (memfd)."""

from __future__ import annotations

import posixpath
import re
from typing import Literal

LOADER = re.compile(r"^(ld-linux[-.\w]*\.so\.\d+|ld-musl-[\w-]+\.so\.1|ld64\.so\.[12]|ld\.so\.1|ld\.so)$")
SHM_DIRS = ("/dev/shm/", "/run/shm/")
# ld.so options followed by a value (glibc and musl); the program is the first other argument.
LOADER_OPTIONS_WITH_VALUE = frozenset({"--library-path", "--preload", "--audit", "--argv0", "--inhibit-rpath",
                                       "--glibc-hwcaps-prepend", "--glibc-hwcaps-mask"})  # fmt: skip

ExecKind = Literal["memfd", "shm", "loader"]


def unusual_exec(exe: str, args: list[str], cwd: str) -> tuple[ExecKind, str] | None:
    """(kind, path of the program that really runs) for a fileless, tmpfs or loader-started execution."""
    if exe.startswith("/memfd:"):
        return "memfd", exe
    if exe.startswith(SHM_DIRS):
        return "shm", exe
    if LOADER.match(posixpath.basename(exe)):
        program = _loader_program(args[1:])
        return None if program is None else ("loader", posixpath.normpath(posixpath.join(cwd or "/", program)))
    return None


def _loader_program(args: list[str]) -> str | None:
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in LOADER_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None
