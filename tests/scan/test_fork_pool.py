"""The scan's forked workers: results in input order, every file name carried, children that die or are
left behind handled, no deadlock when tasks or results outgrow the pipes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bindrift.scan.fork_pool import ordered_batches
from bindrift.sensors.targets import ScanError


def _work(batch: list[str]) -> tuple[int, list[str]]:
    return os.getpid(), batch


def _encode(result: tuple[int, list[str]]) -> bytes:
    pid, batch = result
    return b"\n".join([str(pid).encode(), *(os.fsencode(p) for p in batch)])


def _decode(data: bytes) -> tuple[int, list[str]]:
    pid, *paths = data.split(b"\n")
    return int(pid), [os.fsdecode(p) for p in paths]


def _children() -> set[int]:
    """This process's children, zombies (not yet reaped) included: /proc/PID/stat field 4 is the parent."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                found.add(int(entry))
    return found


@pytest.fixture
def no_children_left() -> Iterator[None]:
    """Every child a test forks is reaped by the time it ends (other tests' children are left alone)."""
    before = _children()
    yield
    assert _children() <= before


@pytest.mark.timeout(60)
def test_results_keep_input_order_over_every_process(no_children_left: None) -> None:
    items: list[list[str] | ScanError] = []
    for n in range(300):
        items.append([f"/data/{n}/{i}" for i in range(1 + n % 7)] + ["/odd/\udcff-name"])
        if n % 50 == 0:
            items.append(ScanError(f"/missing/{n}", "gone"))
    results = list(ordered_batches(iter(items), 3, _work, _encode, _decode))
    assert [r if isinstance(r, ScanError) else r[1] for r in results] == items
    pids = {r[0] for r in results if not isinstance(r, ScanError)}
    assert os.getpid() in pids and len(pids) == 3, "the caller and both children took batches"


@pytest.mark.timeout(60)
def test_tasks_and_results_larger_than_the_pipes(no_children_left: None) -> None:
    long_name = "/" + "d" * 250
    items: list[list[str] | ScanError] = [[f"{long_name}/{n}/{'f' * 200}{i}" for i in range(2000)] for n in range(12)]
    results = list(ordered_batches(iter(items), 2, _work, _encode, _decode))
    assert [r[1] for r in results if not isinstance(r, ScanError)] == items


@pytest.mark.timeout(60)
def test_a_child_that_dies_is_an_error_and_is_reaped(no_children_left: None) -> None:
    parent = os.getpid()

    def dies(batch: list[str]) -> tuple[int, list[str]]:
        if os.getpid() != parent:
            os._exit(3)
        return parent, batch

    with pytest.raises(RuntimeError, match="ended before writing its results"):
        list(ordered_batches(iter([["/a"], ["/b"], ["/c"]]), 2, dies, _encode, _decode))


@pytest.mark.timeout(60)
def test_a_scan_stopped_early_ends_its_children(no_children_left: None) -> None:
    results = ordered_batches(iter([[f"/{n}"] for n in range(100)]), 2, _work, _encode, _decode)
    assert next(iter(results))[1] == ["/0"]  # type: ignore[index]
    results.close()
