"""When the agent reads process events: as they come while quiet, in batches through an exec burst, and
back to as they come once a window is quiet."""

from __future__ import annotations

from bindrift.sensors.runtime.process_pacing import BATCH_S, BURST_EXECS, WINDOW_S, ProcessPacing


def test_quiet_node_reads_each_event_as_it_comes() -> None:
    pacing = ProcessPacing()
    now = 100.0
    for _ in range(BURST_EXECS - 1):  # a container start: a few execs in one window
        pacing.read(1, now)
        assert pacing.waiting and not pacing.due(now + 1)
        now += WINDOW_S / BURST_EXECS
    now += WINDOW_S  # the next window starts quiet
    pacing.read(1, now)
    assert pacing.waiting and pacing.bursts == 0


def test_burst_batches_then_ends_after_a_quiet_window() -> None:
    pacing = ProcessPacing()
    now = 100.0
    pacing.read(BURST_EXECS - 1, now)
    assert pacing.waiting
    pacing.read(1, now + 0.001)  # the tenth exec inside one window
    assert not pacing.waiting and pacing.bursts == 1
    assert not pacing.due(now + 0.001 + BATCH_S / 2) and pacing.due(now + 0.001 + BATCH_S)
    now += 0.001
    for _ in range(20):  # a busy batch every BATCH_S: the burst goes on across windows
        now += BATCH_S
        pacing.read(3, now)
        assert not pacing.waiting
    last_busy = now
    while not pacing.waiting:  # quiet batches: the burst ends once a whole window had fewer execs
        now += BATCH_S
        pacing.read(0, now)
    assert now - last_busy <= 2 * WINDOW_S + BATCH_S
    assert pacing.next_read == 0.0 and not pacing.due(now + 1)
    assert pacing.bursts == 1


def test_batch_only_never_waits_on_the_socket() -> None:
    pacing = ProcessPacing(batch_only=True)
    pacing.read(0, 1.0)
    assert not pacing.waiting and not pacing.due(2.0)  # read with the caller's periodic work
