"""SHA-256 indicator lists: plain text, CSV with a `sha256` column, and STIX 2.1 bundles (read with stix2)."""

from __future__ import annotations

import csv
import io
import re

from bindrift.schema.finding import IntelMatch

MAX_LIST_BYTES = 256 * 2**20
SHA256 = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})\b")
# `[file:hashes.'SHA-256' = '…']`, also `SHA256`, double quotes, and values OR-ed in one pattern.
STIX_HASH = re.compile(r"""file:hashes\.(?:'SHA-256'|"SHA-256"|'SHA256'|SHA256|"SHA256")\s*=\s*'([0-9a-fA-F]{64})'""")


class IntelFormatError(ValueError):
    """A list that cannot be read as its kind."""


def read_text_list(text: str, source: str) -> dict[str, IntelMatch]:
    """One hash per line (`sha256:` prefix allowed); `#` starts a comment, which names the entry."""
    found: dict[str, IntelMatch] = {}
    for number, line in enumerate(text.splitlines(), 1):
        content, _, comment = line.partition("#")
        match = SHA256.match(content.strip())
        if match:
            digest = match.group(1).lower()
            found[digest] = IntelMatch(source, "sha256", comment.strip() or digest, f"line {number}")
    return found


def read_csv_list(text: str, source: str) -> dict[str, IntelMatch]:
    """A CSV with a `sha256` column (any case); a `name`, `description` or `malware` column names the entry."""
    reader = csv.DictReader(io.StringIO(text))
    columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    if "sha256" not in columns:
        raise IntelFormatError(f"{source}: no sha256 column (columns: {', '.join(columns) or 'none'})")
    label = next((columns[c] for c in ("name", "malware", "description", "signature") if c in columns), None)
    found: dict[str, IntelMatch] = {}
    for number, row in enumerate(reader, 2):
        value = (row.get(columns["sha256"]) or "").strip()
        match = SHA256.fullmatch(value)
        if match:
            digest = match.group(1).lower()
            name = (row.get(label) or "").strip() if label else ""
            found[digest] = IntelMatch(source, "sha256", name or digest, f"row {number}")
    return found


def read_stix_bundle(text: str, source: str) -> dict[str, IntelMatch]:
    """SHA-256 hashes in the patterns of a STIX 2.1 bundle's indicators, named by the indicator."""
    import stix2  # lazy: only deployments with STIX feeds pay for the import

    try:
        bundle = stix2.parse(text, allow_custom=True)
    except Exception as exc:  # stix2 raises many types for malformed bundles
        raise IntelFormatError(f"{source}: not a STIX 2.1 bundle: {exc}") from exc
    objects = getattr(bundle, "objects", None) or [bundle]
    found: dict[str, IntelMatch] = {}
    for obj in objects:
        if getattr(obj, "type", "") != "indicator" or getattr(obj, "pattern_type", "stix") != "stix":
            continue
        name = getattr(obj, "name", None) or obj.id
        for digest in STIX_HASH.findall(obj.pattern):
            found[digest.lower()] = IntelMatch(source, "stix", str(name), obj.id)
    return found
