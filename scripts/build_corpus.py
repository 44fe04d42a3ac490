#!/usr/bin/env python3
"""Builds the extra corpus classes of issue 14 into a folder with labels.csv, for
`python3 ../shared/tools/score_corpus.py FOLDER --cmd "bindrift scan"`.

    .venv/bin/python scripts/build_corpus.py OUT [--binaries .cache/test-binaries]

Legitimate files (labelled 0 where they must get nothing at medium or above): separate debug files
(libc6-dbg, and `objcopy --only-keep-debug` of local builds), boot loaders and firmware (syslinux-common,
grub-pc-bin, opensbi, qemu-system-data; firmware for another architecture is labelled incompatible=1),
a kernel-shaped image and a kernel-module-shaped object built here. Positives: UPX 4.2.2 output of the
fetched busybox/curl builds for every architecture UPX packs, with each trick of issue 14 applied
(tests/upx_mutations.py), and an x32 program. Debian packages are fetched with `apt-get download` into
--debs (.cache/corpus-debs) and unpacked there; nothing is copied from elsewhere by hand.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests import upx_mutations as mutate  # noqa: E402

PACKAGES = ("libc6-dbg", "syslinux-common", "grub-pc-bin", "opensbi", "qemu-system-data")
FOREIGN_FIRMWARE = ("opensbi", "openbios", "hppa-firmware", "palcode", "s390-")
UPX_SOURCES = {
    "amd64": "busybox-static-amd64/bin/busybox", "i386": "busybox-static-i386/bin/busybox",
    "arm64": "busybox-static-arm64/bin/busybox", "armhf": "busybox-static-armhf/bin/busybox",
    "mipsel": "busybox-static-mipsel/bin/busybox", "ppc64el": "busybox-static-ppc64el/bin/busybox",
    "armhf-dynamic": "curl-armhf/usr/bin/curl", "arm64-dynamic": "curl-arm64/usr/bin/curl",
    "mipsel-dynamic": "curl-mipsel/usr/bin/curl",
}  # fmt: skip
UPX_ARCH = {"amd64": "x86-64", "i386": "i386", "arm64": "aarch64", "armhf": "arm", "mipsel": "mips",
            "ppc64el": "ppc64"}  # fmt: skip
TRICKS: dict[str, Callable[[bytes], bytes]] = {
    "renamed": mutate.rename_magic,
    "zeroed": lambda d: mutate.rename_magic(d, bytes(4)),
    "lowercased": lambda d: mutate.rename_magic(d, b"upx!"),
    "strings-blanked": mutate.blank_strings,
    "overlay-100k": lambda d: mutate.append_overlay(d, 100_000),
    "packheader-cut": mutate.cut_packheader,
    "fully-scrubbed": mutate.scrub_fully,
}
KERNEL_SCRIPT = """ENTRY(phys_start)
phys_start = _start - 0xffffffff80000000;
SECTIONS { . = 0xffffffff81000000; .text : AT(0x1000000) { *(.text*) } .init.text : { *(.init.text) } }
"""
START = 'void _start(void) { for (;;) __asm__ volatile(""); }\nvoid __attribute__((section(".init.text"))) e(void) {}\n'
HEADER = ["file", "source", "arch", "incompatible", "packed", "tampered", "anomaly", "note"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--binaries", type=Path, default=ROOT / ".cache" / "test-binaries")
    ap.add_argument("--per-package", type=int, default=40, help="files kept per Debian package")
    ap.add_argument("--debs", type=Path, default=ROOT / ".cache" / "corpus-debs", help="where packages are unpacked")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    rows += debian_files(out, args.debs, args.per_package)
    with tempfile.TemporaryDirectory() as work:
        rows += local_builds(out, Path(work))
    rows += upx_tricks(out, args.binaries)
    with (out / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(sorted(rows))
    print(f"{len(rows)} labelled files in {out}")
    return 0


def debian_files(out: Path, debs: Path, per_package: int) -> list[list[str]]:
    """The ELF files of each package (the largest first, `per_package` at most), labelled legitimate."""
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, check=True, capture_output=True)
    rows = []
    for package in PACKAGES:
        (deb,) = sorted(debs.glob(f"{package}_*.deb"))
        tree = debs / package
        if not tree.exists():
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
        elfs = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink() and _is_elf(p)]
        elfs.sort(key=lambda p: (_relocatable(p), -p.stat().st_size, str(p)))  # loadable images first
        for path in elfs[:per_package]:
            rel = path.relative_to(tree)
            name = f"deb-{package}-{'_'.join(rel.parts[-3:])}"
            shutil.copyfile(path, out / name)
            foreign = package in ("opensbi",) or any(path.name.startswith(f) for f in FOREIGN_FIRMWARE)
            rows.append([name, f"Debian {deb.name} /{rel}", "-", "1" if foreign else "0", "0", "0", "0", ""])
    return rows


def local_builds(out: Path, work: Path) -> list[list[str]]:
    """Separate debug files of local builds, a kernel-shaped image, a module-shaped object, an x32 program."""
    rows = []
    for tool in ("/usr/bin/bash", "/usr/bin/python3", "/usr/bin/gdb", "/usr/bin/perl"):
        if Path(tool).exists():
            name = f"local-{Path(tool).name}.debug"
            subprocess.run(["objcopy", "--only-keep-debug", tool, str(out / name)], check=True)
            rows.append([name, f"objcopy --only-keep-debug {tool}", "x86-64", "0", "0", "0", "0", ""])
    (work / "k.lds").write_text(KERNEL_SCRIPT)
    (work / "k.c").write_text(START)
    kernel = ["-nostdlib", "-static", "-mcmodel=kernel", "-Wl,--build-id=none", f"-Wl,-T,{work / 'k.lds'}"]
    subprocess.run(["gcc", "-O1", "-fno-pic", *kernel, "-o", str(out / "local-vmlinux"), str(work / "k.c")], check=True)
    rows.append(["local-vmlinux", "gcc, kernel-shaped link (physical entry)", "x86-64", "0", "0", "0", "0", ""])
    (work / "m.c").write_text(
        'const char l[] __attribute__((section(".modinfo"))) = "license=GPL";\nint m(void) { return 0; }\n'
    )
    subprocess.run(["gcc", "-c", "-o", str(out / "local-module.ko"), str(work / "m.c")], check=True)
    rows.append(["local-module.ko", "gcc -c with .modinfo", "x86-64", "0", "0", "0", "-", ""])
    for flags, name in ((["-Wl,-Ttext-segment=0x8000"], "local-boot-low.elf"), ([], "local-boot-rwx.elf")):
        (work / "b.c").write_text(START.split("\n", maxsplit=1)[0] + "\n")
        subprocess.run(["gcc", "-O1", "-fno-pic", "-nostdlib", "-static", "-Wl,--build-id=none", "-Wl,--omagic",
                        *flags, "-o", str(out / name), str(work / "b.c")], check=True)  # fmt: skip
        rows.append([name, f"gcc -nostdlib -Wl,--omagic {' '.join(flags)}", "x86-64", "0", "0", "0", "0", ""])
    code = b"\xeb\xfe"
    size = 52 + 32 + len(code)
    ehdr = struct.pack("<16sHHIIIIIHHHHHH", b"\x7fELF\x01\x01\x01" + bytes(9), 2, 62, 1, 0x400054, 52, 0, 0, 52, 32,
                       1, 0, 0, 0)  # fmt: skip
    (out / "local-x32").write_bytes(ehdr + struct.pack("<8I", 1, 0, 0x400000, 0x400000, size, size, 5, 0x1000) + code)
    rows.append(["local-x32", "hand-assembled x32 program", "x32", "1", "0", "0", "-", "x32_abi_disabled (low)"])
    return rows


def upx_tricks(out: Path, binaries: Path) -> list[list[str]]:
    """UPX 4.2.2 output of each architecture, plain and with each trick applied."""
    upx = binaries / "upx-ucl-amd64" / "usr" / "bin" / "upx-ucl"
    rows = []
    for label, rel in UPX_SOURCES.items():
        arch = label.split("-")[0]
        packed = out / f"upx-{label}"
        subprocess.run([str(upx), "-q", "-1", "-f", "-o", str(packed), str(binaries / rel)], check=True,
                       capture_output=True)  # fmt: skip
        foreign = {"amd64": "0", "i386": "-"}.get(arch, "1")  # i386 runs in IA32 compat: not scored
        rows.append([packed.name, f"upx 4.2.2 -1 {rel}", UPX_ARCH[arch], foreign, "1", "0", "-", ""])
        data = packed.read_bytes()
        for trick, function in TRICKS.items():
            name = f"upx-{label}-{trick}"
            (out / name).write_bytes(function(data))
            rows.append([name, f"upx 4.2.2 -1 {rel}, {trick}", UPX_ARCH[arch], foreign, "-", "1", "-", trick])
    return rows


def _relocatable(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(18)[16:18] in (b"\x01\x00", b"\x00\x01")


def _is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


if __name__ == "__main__":
    sys.exit(main())
