"""Who last wrote each file, remembered by the file's identity (device, inode), not by its path: a file renamed
or linked after it was written (`curl -o /tmp/x && mv /tmp/x /usr/local/bin/y`) keeps its writer.

A record cannot outlive the content it describes: every way of changing a file's content goes through a
descriptor open for writing, whose last close the agent is told about (FAN_CLOSE_WRITE), and that event
replaces the record, so an inode number reused by a new file is written, and recorded, again.

ELF files and everything else are kept apart, each bounded: a flood of small files evicts only the other small
files' writers, never the writer of a binary; evictions are counted per tier (one of an ELF file's is rare:
50,000 binaries written since).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bindrift.schema.finding import ProcessInfo

MAX_ELF_REMEMBERED = 50_000
MAX_OTHER_REMEMBERED = 100_000  # scripts and any other file an exec may reach through binfmt_misc


@dataclass(frozen=True, slots=True)
class Written:
    """The writer of a file (None: not known) in a container (or a host path's label), and when the agent saw
    the write (nanoseconds since the epoch)."""

    writer: ProcessInfo | None
    at_ns: int
    container_id: str

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.at_ns / 1e9, UTC)


class WrittenFiles:
    """The bounded table of writes; the oldest record of the full tier goes first."""

    def __init__(self, elf_limit: int = MAX_ELF_REMEMBERED, other_limit: int = MAX_OTHER_REMEMBERED) -> None:
        self._elf: dict[tuple[int, int], Written] = {}
        self._other: dict[tuple[int, int], Written] = {}
        self.elf_limit, self.other_limit = elf_limit, other_limit
        self.evicted = {"elf": 0, "other": 0}

    def note(self, st: os.stat_result, container_id: str, writer: ProcessInfo | None, *, elf: bool) -> None:
        """`writer` just wrote the file `st` (its content is ELF or not)."""
        key = (st.st_dev, st.st_ino)
        tier, limit, other = (self._elf, self.elf_limit, self._other) if elf else (self._other, self.other_limit,
                                                                                  self._elf)  # fmt: skip
        other.pop(key, None)
        if tier.pop(key, None) is None and len(tier) >= limit:
            del tier[next(iter(tier))]  # the oldest: dicts keep insertion order, a rewrite moved to the end
            self.evicted["elf" if elf else "other"] += 1
        tier[key] = Written(writer, time.time_ns(), container_id)

    def get(self, st: os.stat_result, container_id: str) -> Written | None:
        """The last write of the file `st` seen in this container (a write seen in another container sharing a
        volume is not this one's: its writer ran elsewhere)."""
        key = (st.st_dev, st.st_ino)
        found = self._elf.get(key) or self._other.get(key)
        return found if found is not None and found.container_id == container_id else None

    def __len__(self) -> int:
        return len(self._elf) + len(self._other)
