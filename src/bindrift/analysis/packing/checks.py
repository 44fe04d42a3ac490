"""`packed` and `tampered-packer` checks C1–C6 of docs/elf-checks.md §5.

Every UPX signal that needs no more than the program headers and two small reads is checked on every
file, compiled (`ElfImage.packer_probe`): `l_info` shaped as UPX writes it whatever its magic, the
trailer's magic, and the stub's segment layout. Any one of them, a missing section table or an executable
segment that expands in memory leads to the bounded deeper look (identification strings, the PackHeader
wherever it is, entropy); ordinary binaries show none and cost two small reads (the bytes after the
program headers, already in the head, and the last 64 bytes). A file none of whose executable segments
has a byte in the file (a separate debug file) has no stub to look for: only the generic signs apply.
"""

from __future__ import annotations

from bindrift.analysis.elf.reader import ElfImage, Phdr
from bindrift.analysis.packing import upx
from bindrift.analysis.packing.entropy import entropy
from bindrift.analysis.packing.upx import FORMAT_VERSIONS, TRAILER_FROM_END, UPX_MAGIC, LInfo, UpxEvidence
from bindrift.schema.severity import Severity
from bindrift.schema.triage import CheckResult, TriageCategory

ENTROPY_PACKED = 7.2
# Compressed data behind a UPX-shaped layout: code is ≈ 5.5–6.5 bits/byte; a small UPX file (loader
# included) measures 6.9–7.1, under ENTROPY_PACKED.
ENTROPY_UPX_LAYOUT = 6.7


def _result(
    category: TriageCategory, check: str, ref: str, severity: Severity, title: str, detail: str, **evidence: int | str
) -> CheckResult:
    return CheckResult(
        category=category, check=check, ref=ref, severity=severity, title=title, detail=detail, evidence=evidence
    )


def _show(magic: bytes) -> str:
    text = "".join(chr(b) if 0x20 < b < 0x7F else "." for b in magic)
    return f"{magic.hex(' ')} ({text!r})"


def packing_checks(elf: ElfImage) -> list[CheckResult]:
    """Every packing and packer-tampering finding for `elf`."""
    probe = elf.packer_probe()
    if probe is None:
        return []
    l_info_row, trailer_magic, stub, expanding_at, code_bytes = probe
    loads = elf.loads
    l_info = None if l_info_row is None else LInfo(*l_info_row)
    evidence = UpxEvidence(l_info, trailer_magic, stub_segment=None if stub is None else loads[stub])
    expanding = None if expanding_at is None else loads[expanding_at]
    upx_magic = (l_info is not None and l_info.magic == UPX_MAGIC) or trailer_magic == UPX_MAGIC
    shaped = l_info is not None and l_info.plausible
    if not (upx_magic or shaped or evidence.stub_segment is not None or code_bytes):
        return _generic(elf, loads, expanding)  # no byte of the file is code: there is no stub to look for
    upx.inspect(elf, evidence)
    if _is_upx(evidence, upx_magic):
        return _upx_results(evidence)
    if not evidence.magic_elsewhere and evidence.prot_string:
        return [_stub_without_magic()]
    if evidence.stub_segment is not None:
        scrubbed = _scrubbed_layout(elf, evidence.stub_segment)
        if scrubbed is not None:
            return [scrubbed]
    return _generic(elf, loads, expanding)


def _is_upx(ev: UpxEvidence, upx_magic: bool) -> bool:
    shaped = ev.l_info is not None and ev.l_info.plausible
    others = ev.has_strings or ev.prot_string or ev.trailer is not None or ev.stub_segment is not None
    return upx_magic or (shaped and others)


def _upx_results(ev: UpxEvidence) -> list[CheckResult]:
    results = [_upx_identified(ev)]
    li = ev.l_info
    if li is not None and li.plausible and li.magic != UPX_MAGIC:
        both = ev.trailer_magic == li.magic
        results.append(_result(
            "tampered-packer", "upx_magic_changed", "C2", "high", "UPX magic changed",
            f"l_info at {li.offset:#x} has the UPX layout (format version {li.version}, loader size {li.lsize}) but "
            f"its magic is {_show(li.magic)} instead of 'UPX!'"
            + (", and the same 4 bytes replace the trailer's magic at size-36" if both else "")
            + "; renaming the magic makes `upx -d` and signature scanners fail (IoT malware does this).",
            l_info_offset=li.offset, magic=li.magic.hex(), trailer_changed=int(both),
        ))  # fmt: skip
    if not ev.has_strings:
        results.append(_result(
            "tampered-packer", "upx_strings_removed", "C3", "medium", "UPX identification strings removed",
            "the file has UPX's structures but neither the '$Info: This file is packed with the UPX' nor the "
            "'$Id: UPX' string of every UPX stub; they were blanked to hide the packer.",
        ))  # fmt: skip
    if li is not None and li.plausible:
        results.extend(_p_info_results(ev))
    if ev.trailer is None:
        results.append(_result(
            "tampered-packer", "upx_packheader_missing", "C5", "medium", "UPX PackHeader missing",
            "the file has UPX's l_info but no PackHeader (UPX's trailer, normally the last 36 bytes): it was cut "
            "off or overwritten. The program still runs; `upx -d` and unpacking tools fail.",
        ))  # fmt: skip
    elif ev.overlay < 0:
        results.append(_result(
            "tampered-packer", "upx_packheader_truncated", "C5", "medium", "UPX PackHeader cut short",
            f"the UPX PackHeader starts at {ev.trailer.offset:#x}, only {_from_end(ev)} bytes before the end of the "
            "file where UPX writes 36: the file was truncated. The program still runs; unpackers fail.",
            trailer_offset=ev.trailer.offset, missing_bytes=-ev.overlay,
        ))  # fmt: skip
    if ev.trailer is not None and ev.overlay > 0:
        results.append(_result(
            "tampered-packer", "upx_overlay", "C5", "medium", "Data appended after the UPX trailer",
            f"the UPX PackHeader sits at {ev.trailer.offset:#x}, {ev.overlay} bytes before where UPX leaves it "
            f"(size-36); {ev.overlay} junk bytes were appended to break unpackers.",
            trailer_offset=ev.trailer.offset, overlay_bytes=ev.overlay,
        ))  # fmt: skip
    return results


def _from_end(ev: UpxEvidence) -> int:
    """Bytes from the PackHeader to the end of the file."""
    return TRAILER_FROM_END + ev.overlay


def _p_info_results(ev: UpxEvidence) -> list[CheckResult]:
    li = ev.l_info
    assert li is not None
    values = f"p_filesize={li.filesize}, p_blocksize={li.blocksize}"
    why = ""
    if li.filesize == 0 or li.blocksize == 0:
        why = "a zeroed size, which no UPX version writes; it makes `upx -d` refuse the file"
    elif ev.trailer is not None and ev.trailer.u_file_size != li.filesize:
        why = f"p_filesize disagrees with the trailer's original file size {ev.trailer.u_file_size}"
    elif li.version <= 13 and li.filesize != li.blocksize:
        why = f"UPX {FORMAT_VERSIONS.get(li.version, 'format')} writes equal sizes"
    if not why:
        return []
    return [_result(
        "tampered-packer", "upx_p_info_tampered", "C4", "high", "UPX p_info tampered",
        f"p_info at {li.offset + 12:#x} holds {values}: {why}.",
        p_filesize=li.filesize, p_blocksize=li.blocksize,
    )]  # fmt: skip


def _upx_identified(ev: UpxEvidence) -> CheckResult:
    li, trailer = ev.l_info, ev.trailer
    version = f"UPX {ev.id_version}" if ev.id_version else FORMAT_VERSIONS.get(li.version if li else -1, "UPX")
    parts = [version]
    if trailer is not None:
        method = upx.METHODS.get(trailer.method, "unknown")
        parts.append(f"method {method} ({trailer.method}), level {trailer.level}, format id {trailer.format}")
    if li is not None and li.plausible:
        parts.append(f"l_info at {li.offset:#x}, original size {li.filesize} bytes")
    return _result(
        "packed", "upx", "C1", "low", "Packed with UPX",
        "; ".join(parts) + ". The code is compressed and unpacked in memory at run time; static analysis and "
        "signature scans see only the stub.",
        version=version,
    )  # fmt: skip


def _stub_without_magic() -> CheckResult:
    return _result(
        "tampered-packer", "upx_stub_without_magic", "C2", "high", "UPX stub without any UPX magic",
        "the file carries the UPX loader's 'PROT_EXEC|PROT_WRITE failed' message but no 'UPX!' marker anywhere: "
        "a UPX-packed file whose magics were all renamed.",
    )  # fmt: skip


def _scrubbed_layout(elf: ElfImage, code: Phdr) -> CheckResult | None:
    """UPX's segment layout around compressed bytes, with every UPX marker gone."""
    bits = entropy(elf.src, code.offset, code.filesz)
    if bits < ENTROPY_UPX_LAYOUT:
        return None
    return _result(
        "tampered-packer", "upx_scrubbed", "C2", "medium", "UPX layout with every UPX marker removed",
        f"the program headers have the shape of UPX's stub (no interpreter or dynamic section, one writable "
        f"PT_LOAD with at most a page of file bytes to unpack into, one read-execute PT_LOAD from offset 0 "
        f"holding the file with the entry point {elf.entry:#x} in its second half) and that segment's "
        f"{code.filesz:#x} bytes have an entropy of {bits:.2f} bits/byte (compressed; code is ≈ 5.5–6.5), "
        "yet no l_info, PackHeader, 'UPX!' or UPX string is left: a UPX-packed file scrubbed to hide the packer.",
        entropy=f"{bits:.2f}", entry=elf.entry,
    )  # fmt: skip


def _generic(elf: ElfImage, loads: list[Phdr], expanding: Phdr | None) -> list[CheckResult]:
    reasons: list[str] = []
    evidence: dict[str, int | str] = {}
    if expanding is not None:
        reasons.append(
            f"an executable PT_LOAD maps {expanding.memsz:#x} bytes from only {expanding.filesz:#x} in the file "
            "(a stub unpacks code into it)"
        )
        evidence["p_memsz"], evidence["p_filesz"] = expanding.memsz, expanding.filesz
    if not elf.shdrs and loads:
        largest = max(loads, key=lambda ph: ph.filesz)
        bits = entropy(elf.src, largest.offset, largest.filesz)
        if bits > ENTROPY_PACKED:
            reasons.append(
                f"there is no section table and the largest PT_LOAD ({largest.filesz:#x} bytes) has an entropy of "
                f"{bits:.2f} bits/byte (compressed or encrypted; code is ≈ 5.5–6.5)"
            )
            evidence["entropy"] = f"{bits:.2f}"
    if not reasons:
        return []
    return [_result(
        "packed", "packed_generic", "C6", "medium", "Packed or encrypted code",
        "; ".join(reasons) + ". The real program is hidden from static analysis.", **evidence,
    )]  # fmt: skip
