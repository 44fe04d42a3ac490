"""The content worker's queue: a container's file in hand never holds up another container's, a container's
files finish in order, and what does not fit is dropped, its descriptor closed and the drop counted."""

from __future__ import annotations

import os
import selectors
import threading
import time
from collections.abc import Callable

import pytest

from bindrift.agent import content
from bindrift.agent.content import ContentWorker, Job
from bindrift.response.evidence import Blob
from bindrift.schema.finding import Detection


def _job(container: str, label: str, finished: list[str], hold: threading.Event | None = None) -> Job:
    def analyse(_fd: int) -> Detection | None:
        if hold is not None:
            assert hold.wait(10)
        return None

    def finish(_detection: Detection | None, _blob: Blob | None) -> None:
        finished.append(label)

    return Job(os.open("/dev/null", os.O_RDONLY), container, "exec", analyse, finish)


def _until(worker: ContentWorker, done: Callable[[], bool], timeout: float = 10) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(worker, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "the content worker did not finish in time"
            selector.select(0.1)
            for result in worker.results():
                result.job.finish(result.detection, result.blob)


def test_a_container_in_hand_does_not_hold_up_another() -> None:
    worker = ContentWorker()
    hold, finished = threading.Event(), []
    try:
        assert worker.submit(_job("a", "a1", finished, hold))
        for n in range(2, 5):
            assert worker.submit(_job("a", f"a{n}", finished))
        for n in range(1, 4):
            assert worker.submit(_job("b", f"b{n}", finished))
        _until(worker, lambda: len(finished) == 3)
        assert finished == ["b1", "b2", "b3"], "b's files went by while a's first was still in hand"
        hold.set()
        _until(worker, lambda: len(finished) == 7)
        assert finished[3:] == ["a1", "a2", "a3", "a4"], "a container's files finish in order"
    finally:
        hold.set()
        worker.close()


def test_a_full_container_queue_drops_and_counts() -> None:
    worker = ContentWorker()
    hold, finished = threading.Event(), []
    try:
        # two workers: a's first and c's first are in hand, a's queue then fills up to its cap
        assert worker.submit(_job("a", "a-held", finished, hold))
        assert worker.submit(_job("c", "c-held", finished, hold))
        time.sleep(0.2)
        jobs = [_job("a", f"a{n}", finished) for n in range(content.MAX_PER_CONTAINER + 3)]
        taken = [worker.submit(job) for job in jobs]
        assert taken.count(False) == 3 and not any(taken[content.MAX_PER_CONTAINER :])
        for job in jobs[content.MAX_PER_CONTAINER :]:
            with pytest.raises(OSError):
                os.fstat(job.fd)  # a dropped job's descriptor is closed
        assert worker.dropped == 3 and worker.dropped_kinds == {"exec": 3} and worker.dropped_containers == {"a": 3}
        assert worker.submit(_job("b", "b1", finished)), "another container still has room"
        assert not worker.room("a") and worker.room("b")
    finally:
        hold.set()
        worker.close()
