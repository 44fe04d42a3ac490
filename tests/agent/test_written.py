"""The table of writes: by file identity, two bounded tiers, a rewrite moves a record to the newest end."""

from __future__ import annotations

import os

from bindrift.agent.written import WrittenFiles
from bindrift.schema.finding import ProcessInfo


def stat_of(inode: int, device: int = 7) -> os.stat_result:
    return os.stat_result((0o100755, inode, device, 1, 0, 0, 10, 0, 0, 0))


def test_a_flood_of_other_files_never_evicts_the_writer_of_a_binary() -> None:
    table = WrittenFiles(elf_limit=2, other_limit=3)
    table.note(stat_of(1), "c1", ProcessInfo(pid=10, comm="curl"), elf=True)
    for inode in range(100, 200):
        table.note(stat_of(inode), "c1", ProcessInfo(pid=11, comm="tar"), elf=False)
    found = table.get(stat_of(1), "c1")
    assert found is not None and found.writer == ProcessInfo(pid=10, comm="curl")
    assert len(table) == 4 and table.evicted == {"elf": 0, "other": 97}
    assert table.get(stat_of(100), "c1") is None and table.get(stat_of(199), "c1") is not None


def test_the_oldest_record_goes_first_and_a_rewrite_is_new_again() -> None:
    table = WrittenFiles(elf_limit=2, other_limit=2)
    for inode in (1, 2):
        table.note(stat_of(inode), "c1", ProcessInfo(pid=inode), elf=True)
    table.note(stat_of(1), "c1", ProcessInfo(pid=21), elf=True)  # written again: now the newest
    table.note(stat_of(3), "c1", ProcessInfo(pid=3), elf=True)
    assert table.get(stat_of(2), "c1") is None and table.evicted == {"elf": 1, "other": 0}
    again = table.get(stat_of(1), "c1")
    assert again is not None and again.writer == ProcessInfo(pid=21)


def test_a_file_rewritten_as_another_kind_has_one_record() -> None:
    table = WrittenFiles()
    table.note(stat_of(5), "c1", ProcessInfo(pid=1), elf=False)
    table.note(stat_of(5), "c1", ProcessInfo(pid=2), elf=True)
    assert len(table) == 1
    table.note(stat_of(5), "c1", ProcessInfo(pid=3), elf=False)
    found = table.get(stat_of(5), "c1")
    assert len(table) == 1 and found is not None and found.writer == ProcessInfo(pid=3)


def test_identity_is_device_and_inode_and_the_writing_container() -> None:
    table = WrittenFiles()
    table.note(stat_of(5, device=1), "c1", ProcessInfo(pid=1), elf=True)
    assert table.get(stat_of(5, device=2), "c1") is None  # the same inode number on another file system
    assert table.get(stat_of(5, device=1), "c2") is None  # a volume shared with c2: the writer ran in c1
    found = table.get(stat_of(5, device=1), "c1")
    assert found is not None and found.at.tzinfo is not None
