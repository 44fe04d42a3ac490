"""Package records in hand-made image layers: layer order, whiteouts and opaque folders decide which records
apply; refused, hostile and unsupported databases are counted errors, never exceptions. rpm headers are
taken from a real database written by `rpm --root` and then damaged."""

from __future__ import annotations

import base64
import hashlib
import random
import shutil
import sqlite3
import struct
import subprocess
from pathlib import Path

import pytest
from tests.image_archives import layer_tar, oci_archive
from tests.packages import build_rpm, rpm_root
from tests.upx_mutations import rename_magic

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.provenance.rpm import BASENAMES, DIRINDEXES, FILEDIGESTALGO, rpm_index
from bindrift.analysis.source import BufferSource
from bindrift.scan.images import image_reports
from bindrift.schema.triage import TriageReport
from bindrift.sensors import package_db
from bindrift.sensors.targets import ScanError

HOST = HostProfile.parse("x86_64")
needs_rpm = pytest.mark.skipif(not shutil.which("rpmbuild"), reason="needs rpm (rpmbuild)")


@pytest.fixture(scope="module")
def arm64(test_binaries: Path) -> bytes:
    return (test_binaries / "busybox-static-arm64" / "bin" / "busybox").read_bytes()


@pytest.fixture(scope="module")
def rpm_header(tmp_path_factory: pytest.TempPathFactory, arm64: bytes) -> bytes:
    """The Packages blob rpm wrote for a package holding /usr/bin/armbox (SHA-256 digests)."""
    work = tmp_path_factory.mktemp("rpm")
    root = rpm_root(work, [build_rpm(work, "armbox", {"usr/bin/armbox": arm64}, 8)])
    with sqlite3.connect(root / "var" / "lib" / "rpm" / "rpmdb.sqlite") as conn:
        ((blob,),) = conn.execute("SELECT blob FROM Packages").fetchall()
    return bytes(blob)


def _rpmdb(
    path: Path, rows: list[object], schema: str = "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob)"
) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute(schema)
    if schema.startswith("CREATE TABLE"):
        conn.executemany("INSERT INTO Packages (blob) VALUES (?)", [(row,) for row in rows])
    conn.commit()
    conn.close()
    return path.read_bytes()


def _scan(tmp_path: Path, layers: list[dict[str, bytes | None]]) -> tuple[dict[str, TriageReport], list[str]]:
    archive = tmp_path / "image.tar"
    oci_archive(archive, [layer_tar(layer) for layer in layers])
    reports, errors = {}, []
    for item in image_reports(str(archive), HOST, True, None):
        if isinstance(item, ScanError):
            errors.append(f"{item.path}: {item.message}")
        elif item.is_elf:
            reports[item.path] = item
    return reports, errors


def _md5sums(files: dict[str, bytes]) -> bytes:
    return "".join(f"{hashlib.md5(data).hexdigest()}  {path}\n" for path, data in files.items()).encode()


def test_records_from_any_layer_and_whiteouts(tmp_path: Path, arm64: bytes) -> None:
    """Records below a file and above it both apply; a whiteout or an opaque folder removes them."""
    lower = {"usr/bin/low": arm64, "usr/bin/gone": arm64, "usr/bin/hidden": arm64,
             "var/lib/dpkg/info/up.md5sums": _md5sums({"usr/bin/high": arm64}),
             "var/lib/dpkg/info/gone.md5sums": _md5sums({"usr/bin/gone": arm64}),
             "usr/lib/apk/db/installed": b"P:hidden\nF:usr/bin\nR:hidden\nZ:Q1" +
             base64.b64encode(hashlib.sha1(arm64).digest()) + b"\n"}  # fmt: skip
    middle = {"var/lib/dpkg/info/.wh.gone.md5sums": b"", "usr/lib/apk/db/.wh..wh..opq": b""}
    upper = {"usr/bin/high": arm64, "var/lib/dpkg/info/low.md5sums": _md5sums({"usr/bin/low": arm64})}
    reports, errors = _scan(tmp_path, [lower, middle, upper])
    assert errors == []
    assert {p: (r.package, r.provenance) for p, r in reports.items()} == {
        "/usr/bin/low": ("low", "packaged"), "/usr/bin/high": ("up", "packaged"),
        "/usr/bin/gone": (None, None), "/usr/bin/hidden": (None, None),
    }  # fmt: skip
    assert [f.severity for f in reports["/usr/bin/gone"].findings] == ["high"]


def test_a_layer_that_fails_verification_applies_no_records(tmp_path: Path, arm64: bytes) -> None:
    archive = tmp_path / "image.tar"
    layers = [
        layer_tar({"usr/bin/x": arm64}),
        layer_tar({"var/lib/dpkg/info/x.md5sums": _md5sums({"usr/bin/x": arm64})}),
    ]
    digests = [f"sha256:{hashlib.sha256(layer).hexdigest()}" for layer in layers]
    oci_archive(archive, layers, [digests[0], "sha256:" + "0" * 64])
    items = list(image_reports(str(archive), HOST, True, None))
    (report,) = [i for i in items if isinstance(i, TriageReport) and i.is_elf]
    assert report.package is None
    (error,) = [i for i in items if isinstance(i, ScanError)]
    assert "1 package database file(s) of this layer not applied" in error.message


def test_oversized_records_are_refused_and_counted(
    tmp_path: Path, arm64: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    sums = _md5sums({"usr/bin/x": arm64})
    monkeypatch.setattr(package_db, "MAX_TEXT_FILE", len(sums) - 1)
    reports, errors = _scan(tmp_path, [{"usr/bin/x": arm64, "var/lib/dpkg/info/x.md5sums": sums}])
    assert reports["/usr/bin/x"].package is None
    assert [f.severity for f in reports["/usr/bin/x"].findings] == ["high"]
    (error,) = errors
    assert "/var/lib/dpkg/info/x.md5sums: package database refused" in error and "not applied" in error
    monkeypatch.setattr(package_db, "MAX_RPMDB", 10)
    reports, errors = _scan(tmp_path, [{"usr/bin/x": arm64, "var/lib/rpm/rpmdb.sqlite": b"x" * 11}])
    assert errors and "rpm database of 11 bytes exceeds" in errors[0]


@needs_rpm
def test_damaged_rpm_headers_are_dropped_and_counted(tmp_path: Path, arm64: bytes, rpm_header: bytes) -> None:
    def damaged(tag: int, field: int, value: int) -> bytes:
        blob = bytearray(rpm_header)
        (il,) = struct.unpack_from(">I", blob, 0)
        for i in range(il):
            if struct.unpack_from(">i", blob, 8 + 16 * i)[0] == tag:
                if field < 4:
                    struct.pack_into(">I", blob, 8 + 16 * i + 4 * field, value)
                else:  # the first int32 of the tag's data
                    offset = struct.unpack_from(">i", blob, 8 + 16 * i + 8)[0]
                    struct.pack_into(">i", blob, 8 + 16 * il + offset, value)
                return bytes(blob)
        raise AssertionError(f"tag {tag} not in the header")

    hostile = [
        b"\xff\xff\xff\xff" + rpm_header[4:],  # il: 4 billion index entries
        rpm_header[:4] + b"\x7f\xff\xff\xff" + rpm_header[8:],  # dl beyond the blob
        rpm_header[: len(rpm_header) // 2],  # truncated
        damaged(BASENAMES, 2, 0x7FFFFFF0),  # offset outside the data region
        damaged(BASENAMES, 3, 10**9),  # more strings than bytes
        damaged(DIRINDEXES, 4, 99),  # a directory that does not exist
        damaged(FILEDIGESTALGO, 4, 77),  # an unknown digest algorithm
        "a text value",
        b"",
    ]
    database = _rpmdb(tmp_path / "rpmdb.sqlite", [rpm_header, *hostile])
    reports, errors = _scan(tmp_path, [{"usr/bin/armbox": arm64, "var/lib/rpm/rpmdb.sqlite": database}])
    assert (reports["/usr/bin/armbox"].package, reports["/usr/bin/armbox"].provenance) == (
        "armbox-1.0-1.x86_64", "packaged")  # fmt: skip
    assert errors == [f"image.tar:handmade:1!/var/lib/rpm/rpmdb.sqlite: {len(hostile)} rpm record(s) malformed or over "
                      "the cap; not applied"]  # fmt: skip


@needs_rpm
def test_random_damage_never_raises(rpm_header: bytes) -> None:
    """Damaged headers give a record that keeps the reader's rules, or a counted drop; never an exception."""
    rng = random.Random(14)
    kept = dropped = 0
    for _ in range(400):
        blob = bytearray(rpm_header)
        for _ in range(rng.randrange(1, 8)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        index, problem = rpm_index(BufferSource(_rpmdb_bytes(bytes(blob))))
        assert problem is None
        for package, digest, _, manager in index.records.values():
            assert manager == "rpm" and isinstance(package, str)
            assert len(digest) in (32, 40, 56, 64, 96, 128) and not digest.strip(b"0123456789abcdef")
        kept += len(index.records)
        dropped += index.dropped
    assert kept > 100 and dropped > 100, (kept, dropped)


def _rpmdb_bytes(blob: bytes) -> bytes:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob)")
    conn.execute("INSERT INTO Packages (blob) VALUES (?)", (blob,))
    return conn.serialize()


def test_unreadable_and_unsupported_databases_are_errors(tmp_path: Path, arm64: bytes) -> None:
    endless = ("CREATE VIEW Packages AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
               "SELECT x AS hnum, zeroblob(100) AS blob FROM c")  # fmt: skip
    huge = sqlite3.connect(tmp_path / "huge.sqlite")
    huge.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob AS (zeroblob(1000000000)))")
    huge.execute("INSERT INTO Packages (hnum) VALUES (1)")
    huge.commit()
    huge.close()
    cases = [
        ("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\0" + b"\xff" * 5000, "rpm database unreadable"),
        ("usr/lib/sysimage/rpm/rpmdb.sqlite", _rpmdb(tmp_path / "view.sqlite", [], endless), "no Packages table"),
        ("var/lib/rpm/rpmdb.sqlite", (tmp_path / "huge.sqlite").read_bytes(), "no stored blob column"),
        ("var/lib/rpm/Packages", b"\0\0\0\0\0\0\0\0\0\0\0\0\x61\x15\x06\x00", "unsupported rpm database format"),
    ]
    for path, content, message in cases:
        reports, errors = _scan(tmp_path, [{"usr/bin/x": arm64, path: content}])
        assert reports["/usr/bin/x"].package is None
        assert len(errors) == 1 and f"/{path}: package database refused" in errors[0] and message in errors[0], errors


def test_an_elf_file_at_a_record_path_is_triaged_not_read_as_records(tmp_path: Path, arm64: bytes) -> None:
    path = "var/lib/dpkg/info/evil.md5sums"
    reports, errors = _scan(tmp_path, [{path: arm64, "lib/apk/db/installed": arm64}])
    assert errors == []
    assert {p: [f.severity for f in r.findings] for p, r in reports.items()} == {
        f"/{path}": ["high"],
        "/lib/apk/db/installed": ["high"],
    }


def test_an_image_cannot_list_its_tampered_payload_away(tmp_path: Path, arm64: bytes, test_binaries: Path) -> None:
    """An image's records are written by its author: a foreign binary they list is capped (Debian ships
    firmware for other architectures), but UPX output with its magic renamed and a header that lies about
    its own size keep their severity, listed or not, and the file is still named packaged."""
    upx = test_binaries / "upx-ucl-amd64" / "usr" / "bin" / "upx-ucl"
    packed = tmp_path / "packed"
    subprocess.run([str(upx), "-q", "-1", "-o", str(packed), str(test_binaries / "busybox-static-amd64" / "bin" /
                    "busybox")], check=True, capture_output=True, timeout=120)  # fmt: skip
    renamed = rename_magic(packed.read_bytes())
    lying = bytearray(Path("/usr/bin/true").read_bytes())
    lying[52:54] = (72).to_bytes(2, "little")  # e_ehsize: 64 in every ELF64 file
    payloads = {"usr/bin/miner": renamed, "usr/bin/true": bytes(lying), "usr/bin/armbox": arm64}
    reports, errors = _scan(tmp_path, [{**payloads, "var/lib/dpkg/info/evil.md5sums": _md5sums(payloads)}])
    assert errors == []
    assert {p: r.provenance for p, r in reports.items()} == dict.fromkeys(
        ("/usr/bin/miner", "/usr/bin/true", "/usr/bin/armbox"), "packaged"
    )
    severities = {p: {f.check: f.severity for f in r.findings} for p, r in reports.items()}
    assert severities["/usr/bin/miner"]["upx_magic_changed"] == "high"
    assert severities["/usr/bin/miner"]["upx"] == "info", "the packing itself is capped: packages ship UPX output"
    assert severities["/usr/bin/true"]["bad_ehsize"] == "medium"
    assert severities["/usr/bin/armbox"] == {"foreign_arch": "info"}
