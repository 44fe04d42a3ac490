"""Known dynamic-loader paths (PT_INTERP) of glibc, musl, uClibc, Android and the BSDs."""

from __future__ import annotations

import re
from functools import lru_cache

# Base names of loaders shipped by C libraries; any absolute directory is accepted (Nix store paths,
# /usr/lib, multiarch and patchelf'd bundles put the same loaders elsewhere).
_LOADER_NAME = re.compile(
    r"""(?x)
    ld-linux(-[a-z0-9_]+)*\.so\.[0-9]+        # glibc: ld-linux-x86-64.so.2, ld-linux-armhf.so.3, ld-linux.so.2
    | ld64\.so\.[12] | ld\.so\.1               # glibc on ppc64, s390x, mips, ppc, m68k
    | ld-musl-[a-z0-9_]+(-sf|-sp|-hf)?\.so\.1  # musl
    | ld(64)?-uClibc(-[0-9.]+)?\.so(\.[0-9]+)? # uClibc / uClibc-ng
    | linker(64)?                              # Android bionic
    | ld-elf(32)?\.so\.1 | ld\.elf_so | ld\.so # FreeBSD, NetBSD, OpenBSD
    """
)
_LOADER_DIRS = ("/lib", "/lib32", "/lib64", "/libx32", "/usr/lib", "/usr/lib32", "/usr/lib64", "/system/bin",
                "/libexec", "/usr/libexec", "/nix/store", "/gnu/store", "/opt", "/usr/local/lib")  # fmt: skip


@lru_cache(maxsize=256)
def is_known_loader(path: str) -> bool:
    """True for an absolute path whose base name is a known loader under a usual library directory."""
    if not path.startswith("/") or "\\" in path or any(ord(c) < 0x21 or ord(c) > 0x7E for c in path):
        return False
    directory, _, name = path.rpartition("/")
    if not _LOADER_NAME.fullmatch(name):
        return False
    return any(directory == d or directory.startswith(d + "/") for d in _LOADER_DIRS)
