"""Hostile and unusual image archives, each built by its test: every compression, lying digests, corrupt
streams, oversized metadata and hard links. Each asserts the error named, and that the rest is reported."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest
from tests.image_archives import Link, compress, docker_archive, layer_tar, oci_archive, sha256

from bindrift.sensors.images import LayerEnd, iter_image_members
from bindrift.sensors.tar_stream import MAX_PATH, TarFormatError, TarStream
from bindrift.sensors.targets import ImageMember, ScanError

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
ELF = Path("/usr/bin/true").read_bytes()
ELF2 = Path("/usr/bin/false").read_bytes()


def _items(archive: Path) -> tuple[dict[str, ImageMember], list[ScanError], list[LayerEnd]]:
    members, errors, ends = {}, [], []
    for item in iter_image_members(str(archive)):
        if isinstance(item, ScanError):
            errors.append(item)
        elif isinstance(item, LayerEnd):
            ends.append(item)
        elif isinstance(item, ImageMember):
            members[item.path] = item
    return members, errors, ends


# Runs the command given and writes its peak RSS (its only child's ru_maxrss, in KiB) to the file named first.
MEASURE = """import resource, subprocess, sys
status = subprocess.run(sys.argv[2:], check=False).returncode
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(status)"""


def _scan(archive: Path) -> tuple[int, dict[str, dict[str, object]], str, int]:
    """`bindrift scan --format json` as a whole process: exit status, reports by path, stderr, max RSS (bytes)."""
    rss_file = archive.with_suffix(".rss")
    command = [BINDRIFT, "scan", "--format", "json", "--host-arch", "x86_64", str(archive)]
    result = subprocess.run([sys.executable, "-c", MEASURE, str(rss_file), *command], capture_output=True,
                            timeout=300, check=False)  # fmt: skip
    reports = {r["path"]: r for r in map(json.loads, result.stdout.splitlines())}
    return result.returncode, reports, result.stderr.decode(), int(rss_file.read_text()) * 1024


@pytest.mark.parametrize("kind", ["gzip", "zstd", "plain"])
def test_every_layer_compression_out_of_the_box(tmp_path: Path, kind: str) -> None:
    lower = compress(layer_tar({"bin/": None, "bin/t": ELF}), kind)
    upper = compress(layer_tar({"bin/f": ELF2, "etc/": None, "etc/motd": b"hello\n"}), kind)
    digests = oci_archive(tmp_path / "oci.tar", [lower, upper])
    members, errors, ends = _items(tmp_path / "oci.tar")
    assert not errors and all(not end.problems for end in ends) and len(ends) == 2
    assert members["/bin/t"].sha256 == hashlib.sha256(ELF).hexdigest() and members["/bin/t"].layer == digests[0]
    assert members["/bin/f"].is_elf and members["/bin/f"].layer == digests[1]
    assert not members["/etc/motd"].is_elf


def test_blob_not_matching_its_digest_is_an_error_and_credits_nothing(tmp_path: Path) -> None:
    good = compress(layer_tar({"bin/t": ELF}), "gzip")
    swapped = compress(layer_tar({"bin/evil": ELF2}), "gzip")
    claimed = sha256(compress(layer_tar({"bin/innocent": ELF}), "gzip"))
    oci_archive(tmp_path / "oci.tar", [good, swapped], digests=[sha256(good), claimed])
    status, reports, stderr, _ = _scan(tmp_path / "oci.tar")
    assert status == 2, stderr
    assert set(reports) == {"/bin/t"}, "no file of the mismatching blob is reported"
    assert claimed in stderr and "blob digest mismatch" in stderr and "1 file(s) of this layer not reported" in stderr


def test_docker_archive_diff_id_mismatch(tmp_path: Path) -> None:
    layers = [layer_tar({"bin/t": ELF}), layer_tar({"bin/f": ELF2})]
    wrong = sha256(b"another layer")
    docker_archive(tmp_path / "docker.tar", layers, diff_ids=[sha256(layers[0]), wrong])
    _, errors, ends = _items(tmp_path / "docker.tar")
    assert not errors
    bad = [end for end in ends if end.problems]
    assert [end.layer for end in bad] == [wrong] and "diff-id mismatch" in bad[0].problems[0]
    status, reports, stderr, _ = _scan(tmp_path / "docker.tar")
    assert status == 2 and set(reports) == {"/bin/t"} and wrong in stderr


def test_corrupt_gzip_data_is_an_error_naming_layer_and_offset(tmp_path: Path) -> None:
    good = compress(layer_tar({"bin/t": ELF}), "gzip")
    blob = bytearray(compress(layer_tar({"bin/a": ELF, "bin/b": ELF2, "bin/c": ELF}), "gzip"))
    middle = len(blob) // 2
    blob[middle : middle + 64] = bytes(b ^ 0x5A for b in blob[middle : middle + 64])
    digests = oci_archive(tmp_path / "oci.tar", [good, bytes(blob)])  # digests of the corrupt bytes: they match
    members, _, ends = _items(tmp_path / "oci.tar")
    (bad,) = [end for end in ends if end.problems]
    assert bad.layer == digests[1] and "corrupt gzip data" in bad.problems[0] and "offset" in bad.problems[0]
    assert "/bin/t" in members, "the other layer is still reported"
    status, reports, stderr, _ = _scan(tmp_path / "oci.tar")
    assert status == 2 and set(reports) == {"/bin/t"} and digests[1] in stderr


def test_bad_tar_header_is_an_error_not_the_end_of_the_layer(tmp_path: Path) -> None:
    layer = bytearray(layer_tar({"bin/a": ELF, "bin/b": ELF2}))
    second = 512 + len(ELF) + (-len(ELF) % 512)
    layer[second + 10 : second + 74] = b"\xff" * 64
    _, _, ends = _items(_archive_of(tmp_path, [layer_tar({"x": ELF}), bytes(layer)]))
    (bad,) = [end for end in ends if end.problems]
    assert f"bad tar header checksum at offset {second}" in bad.problems[0]


def test_data_hidden_after_end_of_archive_is_an_error(tmp_path: Path) -> None:
    layer = layer_tar({"bin/a": ELF}) + b"\0" * 1024 + b"hidden"
    _, _, ends = _items(_archive_of(tmp_path, [layer]))
    assert "data after the end-of-archive marker" in ends[0].problems[0]


def _archive_of(tmp_path: Path, layers: list[bytes]) -> Path:
    oci_archive(tmp_path / "oci.tar", layers)
    return tmp_path / "oci.tar"


def test_hard_links_resolve_to_any_target(tmp_path: Path) -> None:
    lower = layer_tar({
        "etc/": None, "etc/motd": b"welcome\n", "etc/motd-hard": Link("etc/motd"),
        "bin/": None, "bin/a": ELF, "bin/b": Link("bin/a"), "bin/c": Link("bin/b"),
        "bin/sym": Link("a", hard=False), "bin/to-sym": Link("bin/sym"), "bin/dangling": Link("bin/nowhere"),
    })  # fmt: skip
    upper = layer_tar({"bin/.wh.a": b""})  # the target itself is deleted above: its links still hold the bytes
    members, errors, ends = _items(_archive_of(tmp_path, [lower, upper]))
    assert all(not end.problems for end in ends)
    assert not members["/etc/motd-hard"].is_elf, "a hard link to a non-ELF file is not an error"
    for link in ("/bin/b", "/bin/c"):
        assert members[link].is_elf and members[link].sha256 == hashlib.sha256(ELF).hexdigest()
        assert members[link].source is not None and members[link].source.read(0, 4) == b"\x7fELF"
    assert "/bin/a" not in members and "/bin/to-sym" not in members and "/bin/sym" not in members
    assert [e.path for e in errors] == ["oci.tar:handmade:1!/bin/dangling"]
    assert "does not hold" in errors[0].message


def test_hard_link_to_a_file_beyond_the_kept_bytes_is_read_again(tmp_path: Path) -> None:
    from bindrift.sensors import images

    big = ELF + bytes(images.RECENT_BUDGET)  # an ELF larger than the bytes kept for later links
    layer = layer_tar({"big": big, "later": ELF2, "big-link": Link("big")})
    members, errors, _ = _items(_archive_of(tmp_path, [compress(layer, "gzip")]))
    assert not errors
    assert members["/big-link"].sha256 == hashlib.sha256(big).hexdigest() and members["/big-link"].size == len(big)


def test_metadata_caps_are_per_entry_errors() -> None:
    long_path = "d/" * 3000 + "f"
    with io.BytesIO() as buffer:
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in (long_path, "ok"):
                info = tarfile.TarInfo(name)
                info.size = len(ELF)
                tar.addfile(info, io.BytesIO(ELF))
        buffer.seek(0)
        entries = list(TarStream(buffer))
    assert entries[0].error is not None and len(entries[0].name) <= MAX_PATH
    assert entries[1].name == "ok" and entries[1].error is None
    with io.BytesIO(layer_tar({str(i): b"x" for i in range(5)})) as buffer, pytest.raises(TarFormatError) as caught:
        list(TarStream(buffer, max_entries=3))
    assert "more than 3 entries" in str(caught.value)
    with (
        io.BytesIO(layer_tar({"a": bytes(10_000), "b": bytes(10_000)})) as buffer,
        pytest.raises(TarFormatError) as caught,
    ):
        list(TarStream(buffer, max_expanded=16_384))
    assert "layer expands beyond 16384 bytes at offset 10752" in str(caught.value)


def _long_name_layer() -> bytes:
    """A gzip layer (~1 MB) whose first entry is a 1 GiB GNU long name; an ELF follows, then another."""
    size = 2**30
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = tarfile.GNUTYPE_LONGNAME, size
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(header.tobuf(format=tarfile.USTAR_FORMAT))]
    chunk = b"A" * 2**22
    parts += [packer.compress(chunk) for _ in range(size // len(chunk))]
    rest = bytearray()
    for name in ("victim", "after"):
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(ELF), 0o755
        rest += info.tobuf(format=tarfile.GNU_FORMAT) + ELF + bytes(-len(ELF) % 512)
    parts += [packer.compress(bytes(rest) + bytes(1024)), packer.flush()]
    return b"".join(parts)


@pytest.mark.slow
def test_a_1_gib_long_name_is_refused_within_bounded_memory(tmp_path: Path) -> None:
    blob = _long_name_layer()
    assert len(blob) < 2 * 2**20
    digests = oci_archive(tmp_path / "oci.tar", [compress(layer_tar({"first": ELF}), "gzip"), blob])
    status, reports, stderr, rss = _scan(tmp_path / "oci.tar")
    assert status == 2, stderr
    assert set(reports) == {"/first", "/after"}, "the rest of the layer and the image are still reported"
    assert "GNU long name of 1073741824 bytes exceeds the cap" in stderr and digests[1] in stderr
    assert all(len(path) <= MAX_PATH for path in reports)
    assert 0 < rss < 256 * 2**20, f"max RSS {rss / 2**20:.0f} MiB"


def test_gzip_compressed_docker_archive_with_large_layers(tmp_path: Path) -> None:
    big = ELF + bytes(5 * 2**20)  # layers larger than a JSON document: streamed from the inflating archive
    lower = layer_tar({"bin/a": big, "bin/b": Link("bin/a"), "bin/c": ELF2})
    docker_archive(tmp_path / "docker.tar", [lower, layer_tar({"bin/.wh.a": b""})])
    compressed = tmp_path / "docker.tar.gz"
    compressed.write_bytes(gzip.compress((tmp_path / "docker.tar").read_bytes(), compresslevel=1))
    members, errors, ends = _items(compressed)
    assert not errors and all(not end.problems for end in ends)
    assert members["/bin/b"].sha256 == hashlib.sha256(big).hexdigest() and members["/bin/c"].is_elf


def test_member_beyond_the_spill_cap_keeps_head_and_tail_and_full_hash(tmp_path: Path) -> None:
    huge = ELF + bytes(3 * 2**20) + b"TAIL"
    archive = _archive_of(tmp_path, [layer_tar({"huge": huge})])
    (member,) = [m for m in iter_image_members(str(archive), max_spill=2**20) if isinstance(m, ImageMember)]
    assert member.is_elf and not member.complete and member.size == len(huge)
    assert member.sha256 == hashlib.sha256(huge).hexdigest(), "hashed whole though not kept whole"
    assert member.source is not None and member.source.read(0, 4) == b"\x7fELF"
    assert member.source.read(len(huge) - 4, 4) == b"TAIL"
