"""Provenance: whether a file is the one its package manager installed.

A `PackageIndex` maps paths to the package that owns them and the digest its manager recorded: dpkg
`md5sums` (`/var/lib/dpkg/info/*.md5sums`), apk's `installed` database (`Z:Q1…`, a base64 SHA-1) and
rpm's sqlite database (`rpmdb.sqlite`: per-file SHA-256, or MD5 for old packages). The host's index is
loaded once per process, lazily and bounded (`host.py`); an image scan builds one from the same records
read from the image's layers (`image.py`) once every layer has been read. A file's digest is computed
only when its path is in the index (on disk), or in the same read as its SHA-256 (image members).

A file whose content matches its record is *packaged*: its triage findings are capped at info (unless
threat intelligence matches, see cli/scan_store.py), since the distribution shipped it; evidence of
tampering (`tampered-packer`, `check_base.TAMPER_CHECKS`) is not, whoever wrote the records. A file whose
content differs is *modified*, and named so. Files listed but not compared (nothing to cap, hashing off,
content partial) are *listed*.
"""

from bindrift.analysis.provenance.host import host_index
from bindrift.analysis.provenance.records import PackageIndex, Record
from bindrift.analysis.provenance.verdict import MAX_DIGESTED, apply

__all__ = ["MAX_DIGESTED", "PackageIndex", "Record", "apply", "host_index"]
