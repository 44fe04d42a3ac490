"""The eBPF-fed process images with synthetic event sequences: bounded memory, identities that survive a
reused pid, and the writer chosen by the file's modification time."""

from __future__ import annotations

import os
import time

from bindrift.sensors.ebpf.events import ExecEvent, ExitEvent, ForkEvent, Image
from bindrift.sensors.ebpf.images import MAX_IMAGES, TICK_NS, ProcessImages

SHELL = Image(100, 1, 1_000)


def _exec(image: Image, parent: Image, ts: int, argv: list[str], exe: str = "/bin/x", ino: int = 1) -> ExecEvent:
    return ExecEvent(image, parent, ts, 0, 0, image.tgid, 7, 8, 1, argv[0], exe, ino, 9, "/", argv)


def _fork(image: Image, parent: Image, ts: int) -> ForkEvent:
    return ForkEvent(image, parent, ts, 0, 0, image.tgid, 7, 8, "sh")


def _stat(mtime_ns: int, ino: int = 555) -> os.stat_result:
    return os.stat_result((0o100755, ino, 9, 1, 0, 0, 10, 0, 0, 0, 0.0, mtime_ns / 1e9, 0.0, 0, mtime_ns, 0))


def test_ended_images_are_bounded_and_counted() -> None:
    images = ProcessImages()
    images.apply([_exec(SHELL, Image(1, 0, 0), 1_000, ["sh"])])
    events: list[ExecEvent | ForkEvent | ExitEvent] = []
    for pid in range(1_000, 1_000 + MAX_IMAGES):
        child = Image(pid, 1, pid * 10)
        events += [_fork(child, SHELL, pid * 10), _exec(Image(pid, 2, pid * 10), SHELL, pid * 10 + 1, ["true"]),
                   ExitEvent(Image(pid, 2, pid * 10), pid * 10 + 2, 0)]  # fmt: skip
    images.apply(events)
    assert len(images.records) <= MAX_IMAGES + 1 and images.evicted >= MAX_IMAGES
    assert images.current(100) is not None, "a running image is never evicted"
    last = images.current(1_000 + MAX_IMAGES - 1)
    assert last is not None and last.info.args == ["true"], "the newest ended images are kept"


def test_writer_is_the_image_running_when_the_file_was_modified() -> None:
    images = ProcessImages()
    mono_to_real = images._realtime_offset  # the files' clock against the events' clock
    now = time.monotonic_ns()
    first, second = Image(200, 1, now), Image(200, 1, now + 100 * TICK_NS)  # pid 200 reused
    images.apply([
        _fork(first, SHELL, now), _exec(Image(200, 2, now), SHELL, now + 10_000, ["wget", "-O", "f"]),
        ExitEvent(Image(200, 2, now), now + 20 * TICK_NS, 0),
        _fork(second, SHELL, now + 100 * TICK_NS),
        _exec(Image(200, 2, now + 100 * TICK_NS), SHELL, now + 100 * TICK_NS + 10_000, ["sleep", "9"]),
    ])  # fmt: skip
    written_by_first = images.writer(200, _stat(now + 10 * TICK_NS + mono_to_real))
    assert written_by_first is not None and written_by_first.info.args == ["wget", "-O", "f"]
    written_by_second = images.writer(200, _stat(now + 200 * TICK_NS + mono_to_real))
    assert written_by_second is not None and written_by_second.info.args == ["sleep", "9"]
    # stamped a tick before wget's exec by the coarse clock: still wget, never the shell it forked from
    early = images.writer(200, _stat(now + mono_to_real - TICK_NS))
    assert early is not None and early.info.args == ["wget", "-O", "f"]
    # a process running the very file cannot have written it: the image before its exec did
    images.apply([_exec(Image(200, 3, now + 100 * TICK_NS), SHELL, now + 300 * TICK_NS, ["./f"], "/f", 555)])
    runner = images.writer(200, _stat(now + 400 * TICK_NS + mono_to_real, ino=555))
    assert runner is not None and runner.info.args == ["sleep", "9"]
