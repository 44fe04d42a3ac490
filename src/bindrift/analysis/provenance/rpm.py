"""rpm's package records: the sqlite database (`rpmdb.sqlite`, rpm ≥ 4.16), read from a bounded private copy.

Each row of its `Packages` table is an rpm header blob: `il` and `dl` (big-endian int32), `il` index
entries of 16 bytes (tag, type, offset, count) and `dl` bytes of data. Only the tags needed are read,
each checked against the data region before use; a header that breaks a rule is dropped and counted,
never trusted in part. The database is opened read-only and immutable from a copy in a private
temporary folder (no path from the scanned root is ever opened by sqlite), with the schema untrusted,
blobs over `MAX_HEADER` skipped, and a time limit on the whole read. Berkeley DB (`Packages`, rpm < 4.16)
and ndb (`Packages.db`, SUSE) databases are not read: reported as unsupported.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import tempfile
import time
from urllib.parse import quote

from bindrift.analysis.provenance.records import ALGORITHMS, PackageIndex
from bindrift.analysis.source import ByteSource

MAX_RPMDB = 512 * 2**20
MAX_HEADER = 32 * 2**20
MAX_INDEX_ENTRIES = 1 << 16
MAX_PACKAGES = 200_000
READ_SECONDS = 60.0
CHUNK = 1 << 20

NAME, VERSION, RELEASE, ARCH = 1000, 1001, 1002, 1022
OLDFILENAMES, FILEDIGESTS, DIRINDEXES, BASENAMES, DIRNAMES, FILEDIGESTALGO = 1027, 1035, 1116, 1117, 1118, 5011
STRING, INT32, STRING_ARRAY, I18NSTRING = 6, 4, 8, 9
WANTED = {NAME, VERSION, RELEASE, ARCH, OLDFILENAMES, FILEDIGESTS, DIRINDEXES, BASENAMES, DIRNAMES, FILEDIGESTALGO}
# PGPHASHALGO values rpm records in FILEDIGESTALGO; MD5 when the tag is absent.
DIGEST_ALGORITHMS = {1: "md5", 2: "sha1", 8: "sha256", 9: "sha384", 10: "sha512", 11: "sha224"}
HEX_LENGTH = {name: length for length, name in ALGORITHMS.items()}


class HeaderError(ValueError):
    """An rpm header that breaks a rule of the format (or a bound): dropped whole."""


def rpm_index(source: ByteSource, aliases: dict[str, str] | None = None) -> tuple[PackageIndex, str | None]:
    """The records of the rpm sqlite database in `source`, and why it was refused (None when read)."""
    index = PackageIndex("rpm", aliases)
    if source.size > MAX_RPMDB:
        return index, f"rpm database of {source.size} bytes exceeds the {MAX_RPMDB}-byte cap"
    if not source.complete:
        return index, "rpm database not held whole"
    with tempfile.TemporaryDirectory(prefix="bindrift-rpmdb-") as folder:
        copy = os.path.join(folder, "rpmdb.sqlite")
        with open(copy, "xb") as out:
            for offset in range(0, source.size, CHUNK):
                out.write(source.read(offset, min(CHUNK, source.size - offset)))
        try:
            _read(copy, index)
        except sqlite3.Error as exc:
            return PackageIndex("rpm", aliases), f"rpm database unreadable ({exc})"
    return index, None


def _read(copy: str, index: PackageIndex) -> None:
    deadline = time.monotonic() + READ_SECONDS
    conn = sqlite3.connect(f"file:{quote(copy)}?mode=ro&immutable=1", uri=True)
    try:
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1_000)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_HEADER)
        for pragma in ("trusted_schema = OFF", "query_only = ON", "cell_size_check = ON", "mmap_size = 0"):
            conn.execute(f"PRAGMA {pragma}")
        kinds = conn.execute("SELECT type FROM sqlite_master WHERE name = 'Packages'").fetchall()
        if kinds != [("table",)]:
            raise sqlite3.DatabaseError("no Packages table")
        columns = {row[1]: row[6] for row in conn.execute("PRAGMA table_xinfo(Packages)")}
        if columns.get("blob") != 0:  # hidden: 2 or 3 for a generated column, computed on every read
            raise sqlite3.DatabaseError("Packages has no stored blob column")
        rows = conn.execute(
            "SELECT CASE WHEN typeof(blob) = 'blob' AND length(blob) <= ? THEN blob END FROM Packages LIMIT ?",
            (MAX_HEADER, MAX_PACKAGES + 1),
        )
        for count, (blob,) in enumerate(rows):
            if count >= MAX_PACKAGES or blob is None:
                index.dropped += 1
                continue
            try:
                _add_header(blob, index)
            except (HeaderError, struct.error):
                index.dropped += 1
    finally:
        conn.close()


def _add_header(blob: bytes, index: PackageIndex) -> None:
    tags = _entries(blob)
    algorithm_id = _int32s(blob, tags, FILEDIGESTALGO)[0] if FILEDIGESTALGO in tags else 1
    algorithm = DIGEST_ALGORITHMS.get(algorithm_id)
    if algorithm is None:
        raise HeaderError(f"unknown file digest algorithm {algorithm_id}")
    if BASENAMES in tags:
        basenames = _strings(blob, tags, BASENAMES)
        dirnames = _strings(blob, tags, DIRNAMES)
        dirindexes = _int32s(blob, tags, DIRINDEXES)
        if len(dirindexes) != len(basenames) or any(not 0 <= i < len(dirnames) for i in dirindexes):
            raise HeaderError("file tables disagree")
        paths = [dirnames[i] + base for i, base in zip(dirindexes, basenames, strict=True)]
    elif OLDFILENAMES in tags:
        paths = _strings(blob, tags, OLDFILENAMES)
    else:
        return  # a package without files (gpg-pubkey)
    label = "-".join(_string(blob, tags, tag) for tag in (NAME, VERSION, RELEASE))
    label += f".{_string(blob, tags, ARCH)}" if ARCH in tags else ""
    file_digests = _strings(blob, tags, FILEDIGESTS) if FILEDIGESTS in tags else []
    if len(file_digests) != len(paths):
        raise HeaderError("file digests do not match the files")
    size = HEX_LENGTH[algorithm]
    for path, digest in zip(paths, file_digests, strict=True):
        if not digest:
            continue  # a directory, symlink or ghost: no content recorded
        if len(digest) != size or digest.strip(b"0123456789abcdefABCDEF"):
            index.dropped += 1
            continue
        index.add(path.lstrip(b"/"), label, digest.lower())


def _entries(blob: bytes) -> dict[int, tuple[int, int, int]]:
    """The wanted tags' (type, absolute data offset, count), every offset inside the data region."""
    if len(blob) < 8:
        raise HeaderError("header shorter than its preamble")
    il, dl = struct.unpack_from(">II", blob, 0)
    data = 8 + 16 * il
    if not 0 < il <= MAX_INDEX_ENTRIES or data + dl > len(blob):
        raise HeaderError("index or data length out of bounds")
    tags: dict[int, tuple[int, int, int]] = {}
    for tag, kind, offset, count in struct.iter_unpack(">iIiI", blob[8:data]):
        if tag in WANTED:
            if not 0 <= offset < dl or count < 1 or count > dl - offset:
                raise HeaderError(f"tag {tag} outside the data region")
            tags[tag] = (kind, data + offset, count)
    tags[-1] = (0, data + dl, 0)  # where the data region ends
    return tags


def _strings(blob: bytes, tags: dict[int, tuple[int, int, int]], tag: int) -> list[bytes]:
    if tag not in tags:
        raise HeaderError(f"tag {tag} missing")
    kind, start, count = tags[tag]
    if kind not in (STRING, STRING_ARRAY, I18NSTRING) or (kind == STRING and count != 1):
        raise HeaderError(f"tag {tag} is not a string")
    parts = blob[start : tags[-1][1]].split(b"\0", count)
    if len(parts) <= count:
        raise HeaderError(f"tag {tag}: strings run past the data region")
    return parts[:count]


def _string(blob: bytes, tags: dict[int, tuple[int, int, int]], tag: int) -> str:
    return _strings(blob, tags, tag)[0].decode("utf-8", "replace")


def _int32s(blob: bytes, tags: dict[int, tuple[int, int, int]], tag: int) -> tuple[int, ...]:
    if tag not in tags:
        raise HeaderError(f"tag {tag} missing")
    kind, start, count = tags[tag]
    if kind != INT32 or start + 4 * count > tags[-1][1]:
        raise HeaderError(f"tag {tag} is not an int32 array inside the data region")
    return struct.unpack_from(f">{count}i", blob, start)
