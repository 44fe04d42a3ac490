"""`incompatible-architecture`: can the host run this ELF natively, through compat, or only emulated?"""

from __future__ import annotations

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.elf.constants import (
    EF_ARM_EABIMASK,
    EM_ARM,
    EM_X86_64,
    ET_CORE,
    ET_DYN,
    ET_EXEC,
    ET_REL,
    PT_INTERP,
)
from bindrift.analysis.elf.identity import Identity
from bindrift.analysis.elf.reader import ElfImage
from bindrift.schema.severity import Severity
from bindrift.schema.triage import CheckResult, Runnability

# Machines that are never host code: GPU kernels and BPF objects are loaded by drivers, not exec'd.
_DEVICE_MACHINES = {190: "CUDA", 224: "AMDGPU", 247: "BPF"}


def _severity(elf: ElfImage, linking_static: bool) -> Severity:
    """High for something that runs (an executable), medium for a library, low for objects, info for cores."""
    if elf.type == ET_EXEC or (elf.type == ET_DYN and (linking_static or _has_interp(elf))):
        return "high"
    if elf.type == ET_DYN:
        return "medium"
    if elf.type == ET_REL:
        return "low"
    return "info"


def _has_interp(elf: ElfImage) -> bool:
    return any(ph.type == PT_INTERP for ph in elf.phdrs)


def _x32_disabled(runnable_type: bool, flavour: str) -> tuple[Runnability, list[CheckResult]]:
    """x86-64 code for the x32 ABI: the host's own CPU, but a kernel ABI this host does not enable."""
    result = CheckResult(
        category="incompatible-architecture", check="x32_abi_disabled", ref="A2", severity="low",
        title="x32 ABI binary on a kernel without x32", detail=f"{flavour} uses the x32 ABI, which this kernel "
        "does not enable (CONFIG_X86_X32_ABI with syscall.x32=y); it cannot run here. Rare outside toolchains.",
        evidence={"arch": "x32"},
    )  # fmt: skip
    return ("none" if runnable_type else "not-executable"), [result]


def arch_check(elf: ElfImage, ident: Identity, host: HostProfile) -> tuple[Runnability, list[CheckResult]]:
    """How the host would run `elf`, and the finding when it cannot run natively."""
    runnable_type = elf.type in (ET_EXEC, ET_DYN)
    kind = host.runs(elf.machine, elf.bits, elf.little, elf.flags)
    flavour = f"{ident.arch} (ELF{elf.bits}, {ident.endian}-endian, e_machine={elf.machine})"
    if kind == "native":
        return ("native" if runnable_type else "not-executable"), []
    if kind == "compat":
        detail = (f"{flavour} runs on this {host.native} host only through the kernel's {ident.arch} compat "
                  "mode; a 32-bit build among 64-bit binaries deserves a look.")  # fmt: skip
        result = CheckResult(
            category="incompatible-architecture", check="compat_only", ref="A2", severity="info",
            title="Runs only in a compat mode", detail=detail, evidence={"arch": ident.arch, "host": host.native},
        )  # fmt: skip
        return ("compat" if runnable_type else "not-executable"), [result]
    if elf.machine in _DEVICE_MACHINES and not runnable_type:
        return "not-executable", []
    if elf.machine == EM_X86_64 and elf.bits == 32 and host.native == "x86_64":
        return _x32_disabled(runnable_type, flavour)
    severity = _severity(elf, ident.linking == "static")
    evidence: dict[str, int | str] = {"arch": ident.arch, "e_machine": elf.machine, "host": host.describe()}
    detail = f"{flavour} cannot run natively on a {host.describe()} host"
    if elf.machine == EM_ARM and not elf.flags & EF_ARM_EABIMASK:
        detail += "; it is an old-ABI (OABI) ARM file that no current kernel accepts"
    emulator = host.emulator_for(elf.head) if runnable_type else None
    runs: Runnability
    if emulator is not None:
        runs = "emulation"
        evidence["emulator"] = emulator.interpreter
        detail += (f"; it runs only under emulation, through the binfmt_misc handler {emulator.name!r} "
                   f"({emulator.interpreter})")  # fmt: skip
    else:
        runs = "none" if runnable_type else "not-executable"
    if elf.type == ET_CORE:
        detail += "; it is a core dump from such a machine"
    elif runnable_type:
        detail += (
            ". A foreign-architecture executable on a node is typical of malware dropped for another "
            "platform (IoT botnets) or of a download meant for a different host."
        )
    else:
        detail += "."
    result = CheckResult(
        category="incompatible-architecture", check="foreign_arch", ref="A1", severity=severity,
        title=f"{ident.arch} binary on a {host.native} host", detail=detail, evidence=evidence,
    )  # fmt: skip
    return runs, [result]
