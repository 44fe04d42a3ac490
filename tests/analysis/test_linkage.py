"""Interpreter and linking of local builds (`ElfImage.linkage`, compiled): a static-pie executable is static
though it has a dynamic section, a shared library is dynamic, and the interpreter is the loader's path as
written, cut at its first NUL, escaped when it is not UTF-8."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.elf.reader import parse_elf
from bindrift.analysis.source import BufferSource
from bindrift.analysis.triage import triage

HOST = HostProfile.parse("x86_64")
MAIN = "int main(void) { return 0; }\n"


def _gcc(tmp_path: Path, name: str, *flags: str) -> bytes:
    src, out = tmp_path / "main.c", tmp_path / name
    src.write_text(MAIN)
    subprocess.run(["gcc", "-O1", *flags, "-o", str(out), str(src)], check=True, capture_output=True, timeout=60)
    return out.read_bytes()


def _pt_interp_offset(data: bytes) -> int:
    elf = parse_elf(BufferSource(data))
    assert elf is not None
    return next(ph.offset for ph in elf.phdrs if ph.type == 3)


def test_static_pie_static_and_shared_library_dynamic(tmp_path: Path) -> None:
    static_pie = triage(_gcc(tmp_path, "spie", "-static-pie"), host=HOST)
    assert (static_pie.type, static_pie.linking, static_pie.interpreter) == ("dyn", "static", None)
    static = triage(_gcc(tmp_path, "static", "-static"), host=HOST)
    assert (static.type, static.linking) == ("exec", "static")
    shared = triage(_gcc(tmp_path, "lib.so", "-shared", "-fPIC"), host=HOST)
    assert (shared.type, shared.linking, shared.interpreter) == ("dyn", "dynamic", None)
    program = triage(_gcc(tmp_path, "pie", "-pie"), host=HOST)
    assert (program.linking, program.interpreter) == ("dynamic", "/lib64/ld-linux-x86-64.so.2")


def test_interpreter_cut_at_nul_and_escaped(tmp_path: Path) -> None:
    data = bytearray(_gcc(tmp_path, "pie", "-pie"))
    at = _pt_interp_offset(data)
    data[at : at + 12] = b"/tmp/\xff\xfeld\0xx"  # the kernel reads up to the NUL
    report = triage(bytes(data), host=HOST)
    assert report.interpreter == "/tmp/\\xff\\xfeld" and report.linking == "dynamic"
    assert "unusual_interpreter" in {f.check for f in report.findings}
