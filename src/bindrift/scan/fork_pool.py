"""Forked workers without a pool framework: the work is split before the fork, each worker writes its
results to its own pipe, and the caller reads them back in input order.

Items are taken from the input in rounds of at most `ROUND` (the memory held stays bounded whatever the
scan's size). For each round, `jobs - 1` children are forked: item i belongs to process i % jobs, the
caller (process 0) doing its own share between reads. A child inherits the round's items, the loaded
modules and whatever its parent had loaded (package records), so nothing is sent to it; it writes each
result as a length-prefixed frame and exits with `os._exit` (no inherited buffer is flushed twice).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from itertools import islice
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

ROUND = 256
FRAME = 8
PIPE_BYTES = 1 << 20


def ordered_map(
    items: Iterator[In],
    jobs: int,
    work: Callable[[In], Out],
    encode: Callable[[Out], bytes],
    decode: Callable[[bytes], Out],
    passthrough: Callable[[In], Out | None],
) -> Iterator[Out]:
    """`work(item)` for each item, yielded in input order, spread over `jobs` processes; an item for which
    `passthrough` returns a value is not worked on: that value is yielded in its place. A child that dies
    early raises RuntimeError."""
    while chunk := list(islice(items, ROUND)):
        yield from _round(chunk, jobs, work, encode, decode, passthrough)


def _round(
    chunk: list[In],
    jobs: int,
    work: Callable[[In], Out],
    encode: Callable[[Out], bytes],
    decode: Callable[[bytes], Out],
    passthrough: Callable[[In], Out | None],
) -> Iterator[Out]:
    processes = min(jobs, len(chunk))
    children: list[tuple[int, int]] = []  # (pid, read end of its pipe)
    try:
        for share in range(1, processes):
            children.append(_fork(chunk[share::processes], work, encode, passthrough))
        for position, item in enumerate(chunk):
            passed = passthrough(item)
            if passed is not None:
                yield passed
            elif position % processes == 0:
                yield work(item)
            else:
                yield decode(_read_frame(*children[position % processes - 1]))
    finally:
        for pid, fd in children:
            os.close(fd)
            _reap(pid)


def _fork(
    share: list[In], work: Callable[[In], Out], encode: Callable[[Out], bytes], passthrough: Callable[[In], Out | None]
) -> tuple[int, int]:
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        import fcntl

        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:
        pass  # over /proc/sys/fs/pipe-max-size: the default size only makes the child wait more
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            for item in share:
                if passthrough(item) is None:
                    payload = encode(work(item))
                    _write_all(write_end, len(payload).to_bytes(FRAME, "little") + payload)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_frame(pid: int, fd: int) -> bytes:
    size = int.from_bytes(_read_exactly(pid, fd, FRAME), "little")
    return _read_exactly(pid, fd, size)


def _read_exactly(pid: int, fd: int, size: int) -> bytes:
    parts = []
    while size:
        part = os.read(fd, min(size, PIPE_BYTES))
        if not part:
            raise RuntimeError(f"scan worker {pid} ended before writing its results")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _reap(pid: int) -> None:
    """Wait for a child; one still running (the caller stopped reading) is killed first."""
    done, _ = os.waitpid(pid, os.WNOHANG)
    if done == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
