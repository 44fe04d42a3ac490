"""Which tool wrote a line, from its shape alone: a wrong `--from` (a Tetragon file read as Falco) is then named
instead of being read as "0 kept". Only unmistakable marks count; anything else is left to the adapter."""

from __future__ import annotations

import re

from bindrift.schema.external_event import Tool
from bindrift.sensors.ingest.common import WrongFormatError

SNIFF_BYTES = 4096
_AUDIT = re.compile(rb"\s*(?:node=\S+ )?type=[A-Z_0-9]+ msg=audit\(\d+\.\d+:\d+\)")
_TETRAGON = re.compile(rb'\s*\{\s*"process_[a-z_]+"\s*:\s*\{')


def sniff(line: bytes) -> Tool | None:
    """The tool whose output `line` plainly is, or None when the line does not say. A `"` inside a JSON string
    is escaped, so a quoted key found in the raw bytes is a key."""
    head = line[:SNIFF_BYTES]
    if _AUDIT.match(head):
        return "auditd"
    if not head.lstrip().startswith(b"{"):
        return None
    if b'"output_fields"' in head and b'"rule"' in line:
        return "falco"
    if _TETRAGON.match(head):
        return "tetragon"
    if b'"eventName"' in head or (b'"workload"' in line and b'"data"' in line and b'"timestamp"' in line):
        return "tracee"
    return None


def check_format(tool: Tool, line: bytes) -> None:
    """Raises WrongFormatError when `line` is plainly another tool's output."""
    found = sniff(line)
    if found is not None and found != tool:
        raise WrongFormatError(tool, found)
