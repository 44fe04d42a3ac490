"""UPX detection on real UPX 3.91/3.95 (corpus) and 4.2.2 output for several architectures, and the
tampering mutations that IoT malware applies."""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tests import upx_mutations as mutate

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.triage import triage
from bindrift.schema.triage import TriageReport

HOST = HostProfile.parse("x86_64")
ARCHES = ["amd64", "i386", "arm64", "armhf", "mipsel", "ppc64el"]


@pytest.fixture(scope="session")
def upx_binary(test_binaries: Path) -> Path:
    return test_binaries / "upx-ucl-amd64" / "usr" / "bin" / "upx-ucl"


@pytest.fixture(scope="session")
def packed(test_binaries: Path, upx_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """busybox-static of each architecture (and the dynamic /usr/bin/true) packed with UPX 4.2.2."""
    out = tmp_path_factory.mktemp("upx")
    sources = {arch: test_binaries / f"busybox-static-{arch}" / "bin" / "busybox" for arch in ARCHES}
    sources["true-dynamic"] = Path("/usr/bin/true")
    # ARM32 dynamic output keeps 3 section headers and its R-X segment does not expand.
    sources["armhf-dynamic"] = test_binaries / "curl-armhf" / "usr" / "bin" / "curl"
    result = {}
    for name, source in sources.items():
        target = out / f"{name}.upx"
        subprocess.run([str(upx_binary), "-q", "-1", "-o", str(target), str(source)], check=True, capture_output=True)
        result[name] = target
    lzma = out / "amd64-lzma.upx"
    subprocess.run([str(upx_binary), "-q", "--lzma", "-o", str(lzma), str(sources["amd64"])], check=True,
                   capture_output=True)  # fmt: skip
    result["amd64-lzma"] = lzma
    return result


def _checks(report: TriageReport, category: str) -> dict[str, str]:
    return {f.check: f.severity for f in report.findings if f.category == category}


@pytest.mark.parametrize("name", [*ARCHES, "true-dynamic", "amd64-lzma"])
def test_vanilla_upx_4_is_packed_not_tampered(packed: dict[str, Path], name: str) -> None:
    report = triage(packed[name], host=HOST)
    assert report.error is None
    assert _checks(report, "packed") == {"upx": "low"}
    assert _checks(report, "tampered-packer") == {}
    upx = next(f for f in report.findings if f.check == "upx")
    assert upx.detail.startswith("UPX 4.22;")
    assert ("method LZMA (14)" if name.endswith("lzma") else "method NRV2") in upx.detail


def test_vanilla_upx_3_corpus_files(corpus: Path) -> None:
    files = sorted(corpus.glob("upxts-*"))
    assert len(files) >= 7
    for path in files:
        report = triage(path, host=HOST)
        assert _checks(report, "packed") == {"upx": "low"}, path
        assert _checks(report, "tampered-packer") == {}, path
        version = path.name.rsplit("-", 1)[1]
        assert next(f for f in report.findings if f.check == "upx").detail.startswith(f"UPX {version};")


Mutation = Callable[[bytes], bytes]
CASES: dict[str, tuple[Mutation, dict[str, str], str]] = {
    # mutation: (function, tampered-packer checks expected, text in the first expected check's detail)
    "rename_magic": (mutate.rename_magic, {"upx_magic_changed": "high"}, "same 4 bytes replace the trailer"),
    "gayfemboy_magic": (lambda d: mutate.rename_magic(d, b"\x10\xf0\x00\x00"), {"upx_magic_changed": "high"},
                        "10 f0 00 00"),
    "zero_p_info": (mutate.zero_p_info, {"upx_p_info_tampered": "high"}, "p_filesize=0, p_blocksize=0"),
    "skew_p_info": (mutate.skew_p_filesize, {"upx_p_info_tampered": "high"}, "disagrees with the trailer"),
    "overlay": (mutate.append_overlay, {"upx_overlay": "medium"}, "23 junk bytes"),
    "blank_strings": (mutate.blank_strings, {"upx_strings_removed": "medium"}, "$Info"),
    "all": (mutate.all_mutations, {"upx_magic_changed": "high", "upx_strings_removed": "medium",
                                   "upx_p_info_tampered": "high", "upx_overlay": "medium"}, "instead of 'UPX!'"),
}  # fmt: skip


@pytest.mark.parametrize("arch", ["amd64", "arm64", "mipsel"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_tampering_is_named(packed: dict[str, Path], arch: str, case: str) -> None:
    function, expected, text = CASES[case]
    report = triage(function(packed[arch].read_bytes()), host=HOST)
    assert report.error is None
    assert _checks(report, "tampered-packer") == expected
    first = next(f for f in report.findings if f.check == next(iter(expected)))
    assert text in first.detail, first.detail
    assert "packed" in {f.category for f in report.findings}, "still reported as packed"


def test_tampered_corpus_upx_3(corpus: Path) -> None:
    data = (corpus / "upxts-amd64-linux.elf-upx-3.95").read_bytes()
    report = triage(mutate.all_mutations(data), host=HOST)
    assert set(_checks(report, "tampered-packer")) == {
        "upx_magic_changed", "upx_strings_removed", "upx_p_info_tampered", "upx_overlay"
    }  # fmt: skip


def test_upx_itself_refuses_what_bindrift_calls_tampered(packed: dict[str, Path], upx_binary: Path,
                                                         tmp_path: Path) -> None:  # fmt: skip
    tampered = tmp_path / "tampered"
    tampered.write_bytes(mutate.rename_magic(packed["amd64"].read_bytes()))
    assert subprocess.run([str(upx_binary), "-t", str(tampered)], check=False, capture_output=True).returncode != 0
    subprocess.run([str(upx_binary), "-t", str(packed["amd64"])], check=True, capture_output=True)


def test_generic_packing_high_entropy_without_sections(test_binaries: Path) -> None:
    data = bytearray((test_binaries / "busybox-static-amd64" / "bin" / "busybox").read_bytes())
    struct.pack_into("<QHHH", data, 40, 0, 0, 0, 0)  # drop the section table: e_shoff, …, e_shnum, e_shstrndx
    struct.pack_into("<H", data, 58, 0)
    (phoff,) = struct.unpack_from("<Q", data, 32)
    for i in range(struct.unpack_from("<H", data, 56)[0]):
        p_type, _flags, offset, _v, _p, filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * 56)
        if p_type == 1 and filesz > 100_000:
            data[offset + 4096 : offset + filesz] = os.urandom(filesz - 4096)  # "encrypted" code
    report = triage(bytes(data), host=HOST)
    generic = next(f for f in report.findings if f.check == "packed_generic")
    assert generic.severity == "medium" and "entropy" in generic.detail
    assert float(str(generic.evidence["entropy"])) > 7.2


# Every architecture UPX 4.2.2 packs of those fetched, static and dynamic (small) output.
EVERY_ARCH = [*ARCHES, "true-dynamic", "armhf-dynamic"]
TRICKS: dict[str, tuple[Mutation, dict[str, str]]] = {
    "renamed": (mutate.rename_magic, {"upx_magic_changed": "high"}),
    "zeroed": (lambda d: mutate.rename_magic(d, bytes(4)), {"upx_magic_changed": "high"}),
    "lower_cased": (lambda d: mutate.rename_magic(d, b"upx!"), {"upx_magic_changed": "high"}),
    "strings_blanked": (mutate.blank_strings, {"upx_strings_removed": "medium"}),
    "overlay_100k": (lambda d: mutate.append_overlay(d, 100_000), {"upx_overlay": "medium"}),
    "packheader_cut": (mutate.cut_packheader, {"upx_packheader_missing": "medium"}),
    "packheader_cut_short": (lambda d: mutate.cut_packheader(d, 4), {"upx_packheader_truncated": "medium"}),
    "fully_scrubbed": (mutate.scrub_fully, {"upx_scrubbed": "medium"}),
}


@pytest.mark.parametrize("arch", EVERY_ARCH)
@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_every_trick_found_on_every_architecture(packed: dict[str, Path], arch: str, trick: str) -> None:
    function, expected = TRICKS[trick]
    report = triage(function(packed[arch].read_bytes()), host=HOST)
    assert report.error is None
    assert _checks(report, "tampered-packer") == expected


def test_small_fully_scrubbed_upx_is_found(packed: dict[str, Path]) -> None:
    data = mutate.scrub_fully(packed["true-dynamic"].read_bytes())
    assert len(data) < 20_000 and b"UPX" not in data
    (finding,) = [f for f in triage(data, host=HOST).findings if f.check == "upx_scrubbed"]
    assert finding.severity == "medium" and float(str(finding.evidence["entropy"])) > 6.7
