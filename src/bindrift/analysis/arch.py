"""What the host can run: native ELF flavour, kernel compat modes, and binfmt_misc emulators.

Compatibility is decided by (class, byte order, e_machine) plus the ARM EABI version; EI_OSABI plays no
part (docs/elf-checks.md §3).
"""

from __future__ import annotations

import os

import msgspec

from bindrift.analysis.elf.constants import (
    EF_ARM_EABIMASK,
    EM_386,
    EM_486,
    EM_AARCH64,
    EM_ARM,
    EM_LOONGARCH,
    EM_MIPS,
    EM_PPC,
    EM_PPC64,
    EM_RISCV,
    EM_S390,
    EM_X86_64,
)

# (e_machine set, bits, little-endian) per normalised architecture name.
Flavour = tuple[frozenset[int], int, bool]
FLAVOURS: dict[str, Flavour] = {
    "x86_64": (frozenset({EM_X86_64}), 64, True),
    "x32": (frozenset({EM_X86_64}), 32, True),
    "i386": (frozenset({EM_386, EM_486}), 32, True),
    "aarch64": (frozenset({EM_AARCH64}), 64, True),
    "aarch64_be": (frozenset({EM_AARCH64}), 64, False),
    "arm": (frozenset({EM_ARM}), 32, True),
    "armeb": (frozenset({EM_ARM}), 32, False),
    "mips": (frozenset({EM_MIPS}), 32, False),
    "mipsel": (frozenset({EM_MIPS}), 32, True),
    "mips64": (frozenset({EM_MIPS}), 64, False),
    "mips64el": (frozenset({EM_MIPS}), 64, True),
    "ppc": (frozenset({EM_PPC}), 32, False),
    "ppc64": (frozenset({EM_PPC64}), 64, False),
    "ppc64le": (frozenset({EM_PPC64}), 64, True),
    "s390": (frozenset({EM_S390}), 32, False),
    "s390x": (frozenset({EM_S390}), 64, False),
    "riscv64": (frozenset({EM_RISCV}), 64, True),
    "riscv32": (frozenset({EM_RISCV}), 32, True),
    "loongarch64": (frozenset({EM_LOONGARCH}), 64, True),
}
# Names `uname -m` and packaging systems use for the same flavours.
ALIASES = {
    "amd64": "x86_64", "x64": "x86_64", "i486": "i386", "i586": "i386", "i686": "i386", "x86": "i386",
    "arm64": "aarch64", "armv8": "aarch64", "armhf": "arm", "armel": "arm", "armv7l": "arm", "armv7": "arm",
    "armv6l": "arm", "ppc64el": "ppc64le", "powerpc": "ppc", "powerpc64": "ppc64", "powerpc64le": "ppc64le",
    "mips64le": "mips64el", "mipsle": "mipsel", "loong64": "loongarch64",
}  # fmt: skip
# Compat modes assumed on by default for `--host-arch ARCH` (detection probes the real kernel).
DEFAULT_COMPAT = {"x86_64": ("i386",), "ppc64": ("ppc",), "s390x": ("s390",)}

BINFMT_DIR = "/proc/sys/fs/binfmt_misc"
MAX_BINFMT_ENTRIES = 256


class BinfmtHandler(msgspec.Struct, frozen=True):
    """A registered binfmt_misc magic handler (e.g. qemu-aarch64 for aarch64 ELF files)."""

    name: str
    interpreter: str
    offset: int
    magic: bytes
    mask: bytes

    def matches(self, head: bytes) -> bool:
        """True when the file starting with `head` would be handed to this interpreter."""
        window = head[self.offset : self.offset + len(self.magic)]
        if len(window) < len(self.magic):
            return False
        return all((b & m) == (g & m) for b, m, g in zip(window, self.mask, self.magic, strict=True))


class HostProfile(msgspec.Struct, frozen=True):
    """The ELF flavours a host runs natively or through kernel compat modes, and its emulators."""

    native: str
    compat: tuple[str, ...] = ()
    emulators: tuple[BinfmtHandler, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> HostProfile:
        """`x86_64` (with its default compat modes), or `ARCH,COMPAT…` to list compat modes exactly
        (`aarch64,arm`; `x86_64,` for none). Raises ValueError for an unknown architecture."""
        parts = [p.strip().lower() for p in spec.split(",")]
        native = normalise_arch(parts[0])
        if len(parts) == 1:
            return cls(native=native, compat=DEFAULT_COMPAT.get(native, ()))
        compat = tuple(normalise_arch(p) for p in parts[1:] if p)
        return cls(native=native, compat=compat)

    @classmethod
    def detect(cls) -> HostProfile:
        """This machine: native flavour from `uname -m`, compat modes probed, binfmt_misc handlers read."""
        native = normalise_arch(os.uname().machine)
        return cls(native=native, compat=_detect_compat(native), emulators=_read_binfmt())

    def runs(self, machine: int, bits: int, little: bool, flags: int) -> str | None:
        """`native` or `compat` when the kernel runs this flavour directly, else None."""
        for kind, names in (("native", (self.native,)), ("compat", self.compat)):
            for name in names:
                machines, fbits, flittle = FLAVOURS[name]
                if machine in machines and bits == fbits and little == flittle:
                    if machine == EM_ARM and not flags & EF_ARM_EABIMASK and self.native == "aarch64":
                        continue  # arm64 compat runs EABI only; old-ABI files are rejected
                    return kind
        return None

    def emulator_for(self, head: bytes) -> BinfmtHandler | None:
        """The binfmt_misc handler that would run a file starting with `head`, if any."""
        for handler in self.emulators:
            if handler.matches(head):
                return handler
        return None

    def describe(self) -> str:
        """Human-readable summary, e.g. `x86_64 (+i386 compat)`."""
        text = self.native
        if self.compat:
            text += " (+" + ", ".join(self.compat) + " compat)"
        return text


def normalise_arch(name: str) -> str:
    """The flavour name for `name` (aliases accepted); ValueError when unknown."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in FLAVOURS:
        known = ", ".join(sorted(FLAVOURS))
        raise ValueError(f"unknown architecture {name!r}; known: {known}")
    return key


def _read_text(path: str) -> str:
    """A small kernel or /boot file as text (os paths, not pathlib: the scan's start-up imports neither
    pathlib nor platform)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _kernel_config() -> dict[str, str]:
    """CONFIG_* options of the running kernel from /boot (empty when not installed)."""
    try:
        text = _read_text(f"/boot/config-{os.uname().release}")
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if line.startswith("CONFIG_"))
    return {key: value for key, value in pairs}


def _cmdline() -> list[str]:
    try:
        return _read_text("/proc/cmdline").split()
    except OSError:
        return []


def _detect_compat(native: str) -> tuple[str, ...]:
    config = _kernel_config()
    cmdline = _cmdline()
    compat: list[str] = []
    if native == "x86_64":
        ia32_off = "ia32_emulation=0" in cmdline or "ia32_emulation=false" in cmdline
        if config.get("CONFIG_IA32_EMULATION", "y") == "y" and not ia32_off:
            compat.append("i386")
        x32_default = config.get("CONFIG_X86_X32_DISABLED") != "y"
        if config.get("CONFIG_X86_X32_ABI") == "y" and (x32_default or "syscall.x32=y" in cmdline):
            compat.append("x32")
    elif native == "aarch64" and _personality_linux32_allowed():
        compat.append("arm")
    else:
        compat.extend(DEFAULT_COMPAT.get(native, ()))
    return tuple(compat)


def _personality_linux32_allowed() -> bool:
    """arm64 refuses PER_LINUX32 when the CPUs cannot run AArch32 at EL0 — a direct probe."""
    import ctypes

    per_linux32, query = 0x0008, 0xFFFFFFFF
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        current = libc.personality(query)
        if libc.personality(per_linux32) == -1:
            return False
        libc.personality(current)
    except (OSError, AttributeError):
        return False
    return True


def _read_binfmt() -> tuple[BinfmtHandler, ...]:
    """Enabled magic-based binfmt_misc handlers (none when binfmt_misc is not mounted)."""
    try:
        names = sorted(os.listdir(BINFMT_DIR))[:MAX_BINFMT_ENTRIES]
    except OSError:
        return ()
    handlers = []
    for name in names:
        if name in ("register", "status"):
            continue
        handler = _parse_binfmt_entry(name)
        if handler is not None:
            handlers.append(handler)
    return tuple(handlers)


def _parse_binfmt_entry(name: str) -> BinfmtHandler | None:
    try:
        text = _read_text(os.path.join(BINFMT_DIR, name))[:8192]
    except OSError:
        return None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "enabled":
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        fields[key] = value.strip()
    try:
        magic = bytes.fromhex(fields["magic"])
        mask = bytes.fromhex(fields.get("mask", "ff" * len(magic)))
        offset = int(fields.get("offset", "0"))
    except (KeyError, ValueError):
        return None  # extension-based handlers have no magic
    if len(mask) != len(magic):
        return None
    return BinfmtHandler(name=name, interpreter=fields.get("interpreter", ""), offset=offset, magic=magic, mask=mask)
