"""The triage report: what bindrift says about one file (ELF identity, checks that fired, hash)."""

from __future__ import annotations

from typing import Literal

import msgspec

from bindrift.schema.severity import Severity

TriageCategory = Literal["incompatible-architecture", "header-anomaly", "packed", "tampered-packer"]

# How the host would run the file: natively, through a kernel compat mode (IA32 on x86-64, AArch32 on
# arm64), only through a registered binfmt_misc emulator, or not at all.
Runnability = Literal["native", "compat", "emulation", "none", "not-executable"]


class CheckResult(msgspec.Struct, frozen=True):
    """One check that fired. `check` is a stable identifier, `ref` the id in docs/elf-checks."""

    category: TriageCategory
    check: str
    severity: Severity
    title: str
    detail: str
    ref: str = ""
    evidence: dict[str, int | str] = msgspec.field(default_factory=dict)


class TriageReport(msgspec.Struct):
    """Everything triage found about one file. Non-ELF files have `is_elf=False` and no identity."""

    path: str
    size: int
    is_elf: bool
    sha256: str | None = None
    arch: str | None = None
    machine: int | None = None
    bits: int | None = None
    endian: Literal["little", "big"] | None = None
    type: str | None = None
    osabi: str | None = None
    interpreter: str | None = None
    linking: Literal["static", "dynamic"] | None = None
    runs: Runnability | None = None
    findings: list[CheckResult] = msgspec.field(default_factory=list)
    image: str | None = None
    layer: str | None = None
    notes: list[str] = msgspec.field(default_factory=list)
    error: str | None = None
