"""ELF constants and the names bindrift normalises them to."""

from __future__ import annotations

ET_NONE, ET_REL, ET_EXEC, ET_DYN, ET_CORE = 0, 1, 2, 3, 4
ET_NAMES = {ET_NONE: "none", ET_REL: "rel", ET_EXEC: "exec", ET_DYN: "dyn", ET_CORE: "core"}

PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_PHDR = 1, 2, 3, 6
PF_X, PF_W, PF_R = 1, 2, 4

SHT_STRTAB, SHT_NOBITS = 3, 8
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4

EM_386, EM_486, EM_MIPS, EM_MIPS_RS3_LE = 3, 6, 8, 10
EM_PPC, EM_PPC64, EM_ARM, EM_X86_64, EM_AARCH64 = 20, 21, 40, 62, 183
EM_S390, EM_RISCV, EM_LOONGARCH = 22, 243, 258

EF_ARM_EABIMASK = 0xFF000000
EF_PPC64_ABI = 0x3

# e_machine → name; class/byte-order-dependent machines are resolved in `arch_name`.
_MACHINE_NAMES = {
    0: "none",
    2: "sparc",
    4: "m68k",
    5: "m88k",
    7: "i860",
    9: "s370",
    15: "hppa",
    17: "vpp500",
    18: "sparc",
    19: "i960",
    36: "v800",
    37: "fr20",
    38: "rh32",
    39: "rce",
    41: "alpha",
    42: "sh",
    43: "sparc64",
    44: "tricore",
    45: "arc",
    46: "h8300",
    50: "ia64",
    52: "coldfire",
    53: "m68hc12",
    75: "vax",
    76: "cris",
    80: "mmix",
    83: "avr",
    87: "v850",
    88: "m32r",
    89: "mn10300",
    92: "or1k",
    93: "arc",
    94: "xtensa",
    106: "blackfin",
    113: "nios2",
    140: "c6x",
    164: "hexagon",
    189: "microblaze",
    190: "cuda",
    195: "arc",
    220: "z80",
    224: "amdgpu",
    247: "bpf",
    252: "csky",
    0x9026: "alpha",
    0x9041: "m32r",
    0x9080: "v850",
    0xBAAB: "microblaze",
}

OSABI_NAMES = {
    0: "sysv",
    1: "hpux",
    2: "netbsd",
    3: "linux",
    4: "hurd",
    6: "solaris",
    7: "aix",
    8: "irix",
    9: "freebsd",
    10: "tru64",
    11: "modesto",
    12: "openbsd",
    13: "openvms",
    14: "nsk",
    15: "aros",
    16: "fenixos",
    17: "cloudabi",
    18: "openvos",
    97: "arm",
    255: "standalone",
}
# OS/ABI values whose meaning depends on the machine.
_MACHINE_OSABI = {
    (EM_ARM, 64): "arm-aeabi",
    (224, 64): "amdgpu-hsa",
    (224, 65): "amdgpu-pal",
    (224, 66): "amdgpu-mesa3d",
    (190, 51): "cuda",
    (190, 41): "cuda",
}


def arch_name(machine: int, bits: int, little: bool) -> str:
    """Normalised architecture name (`x86_64`, `i386`, `aarch64`, `arm`, `mipsel`, `ppc64le`, …)."""
    if machine == EM_X86_64:
        return "x86_64" if bits == 64 else "x32"
    if machine in (EM_386, EM_486):
        return "i386"
    if machine == EM_AARCH64:
        name = "aarch64" if little else "aarch64_be"
        return name if bits == 64 else name + "_ilp32"
    if machine == EM_ARM:
        return "arm" if little else "armeb"
    if machine in (EM_MIPS, EM_MIPS_RS3_LE):
        base = "mips64" if bits == 64 else "mips"
        return base + "el" if little else base
    if machine == EM_PPC:
        return "ppc" if not little else "ppcle"
    if machine == EM_PPC64:
        return "ppc64le" if little else "ppc64"
    if machine == EM_S390:
        return "s390x" if bits == 64 else "s390"
    if machine == EM_RISCV:
        return "riscv64" if bits == 64 else "riscv32"
    if machine == EM_LOONGARCH:
        return "loongarch64" if bits == 64 else "loongarch32"
    other = _MACHINE_NAMES.get(machine)
    if other == "sparc" and bits == 64:
        return "sparc64"
    return other if other is not None else f"unknown-{machine}"


def osabi_name(osabi: int, machine: int) -> str:
    """Name of an EI_OSABI value (some values are machine-specific)."""
    return _MACHINE_OSABI.get((machine, osabi)) or OSABI_NAMES.get(osabi) or f"unknown-{osabi}"


def type_name(e_type: int) -> str:
    """Name of an e_type value: exec, dyn, rel, core, or the hex value."""
    return ET_NAMES.get(e_type) or f"unknown-0x{e_type:x}"
