"""What every ELF check shares: the per-file context, the message signature and the finding constructor.

The conditions of the header checks are tested in one compiled pass (`ElfImage.header_hits`, _native.c):
each one that holds gives a condition id and the indices and counts its message names; the messages
(field values, and why they are wrong) are made in Python, for the few files where something fired.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from bindrift.analysis.elf.reader import ElfImage, Phdr
from bindrift.schema.severity import Severity
from bindrift.schema.triage import CheckResult

MAX_LISTED = 3
# Header values no toolchain writes: only a hand-edited file carries them, so they are evidence of tampering
# whoever lists the file (provenance does not cap them; the `tampered-packer` findings neither).
TAMPER_CHECKS = frozenset({
    "bad_ident", "ident_contradicts_header", "bad_ehsize", "pht_overlaps_ehdr", "sht_beyond_eof", "bad_shentsize",
    "bad_shstrndx", "multiple_interpreters",
})  # fmt: skip


class CheckContext(msgspec.Struct):
    """Facts the messages share, computed once per file."""

    elf: ElfImage
    interpreters: list[str]
    # The PT_LOAD program headers, in table order (the indices of the hits count these).
    loads: list[Phdr]


# The finding made for one condition that held, from the values `header_hits` gave it.
Message = Callable[[CheckContext, tuple[int, ...]], CheckResult]


def finding(check: str, ref: str, severity: Severity, title: str, detail: str, **evidence: int | str) -> CheckResult:
    """A `header-anomaly` result with the raw field values as evidence."""
    return CheckResult(
        category="header-anomaly", check=check, ref=ref, severity=severity, title=title, detail=detail,
        evidence=evidence,
    )  # fmt: skip


def hexv(value: int) -> str:
    """`value` as the hex literal readelf would print."""
    return f"0x{value:x}"
