"""The normalisation shared by the adapters: times, wrapped durations, container ids, numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bindrift.sensors.ingest import common
from bindrift.sensors.ingest.common import MalformedEventError, container_id, number, rfc3339_ns, signed64, text


def test_times_keep_nanoseconds() -> None:
    assert rfc3339_ns("2026-07-11T09:44:58.682419669Z") == 1783763098682419669
    assert rfc3339_ns("2026-07-11T09:44:58.682419669+00:00") == 1783763098682419669
    assert rfc3339_ns("2026-07-11T11:44:58.5+02:00") == 1783763098500000000
    assert rfc3339_ns("2026-07-11T09:44:58Z") == 1783763098000000000
    for bad in ("2026-07-11T09:44:58", "yesterday", ""):
        with pytest.raises(MalformedEventError):
            rfc3339_ns(bad)


def test_wrapped_durations_and_numbers() -> None:
    assert signed64(18446744073670260079) == -39291537 and signed64(5) == 5
    assert (number("18446744073709551615"), number(7), number(None), number("x", -1), number(True)) == (
        18446744073709551615, 7, 0, -1, 1)  # fmt: skip
    assert (text("<NA>"), text(None), text(3), text("sh")) == ("", "", "", "sh")


def test_container_ids() -> None:
    full = "19a02291e106ce6227b684197be232ea57c4e1a5ab2604a12608c325d701c7f4"
    assert container_id(f"containerd://{full}") == full
    assert container_id(f"cri-o://{full.upper()}") == full
    assert container_id("docker://e6af4dff4ea3b8d50313c59f") == "e6af4dff4ea3b8d50313c59f"
    assert container_id("9965a6a599f6") == "9965a6a599f6"
    # the host, too short to match one container, or not an id at all
    assert [container_id(v) for v in ("host", "", None, "abc", "default/web", "../../etc")] == [""] * 6


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 4_102_444_799), st.text("0123456789", max_size=11), st.sampled_from(["Z", "z", "+00:00", ""]),
       st.booleans())  # fmt: skip
def test_the_cached_seconds_give_what_the_parse_gives(seconds: int, digits: str, zone: str, dot: bool) -> None:
    """The fast path (seconds of a time seen before) answers as the first parse of the same text did."""
    whole = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    text = whole + ("." if dot else "") + digits + zone
    common._SECONDS.clear()
    try:
        first: int | str = rfc3339_ns(text)
    except MalformedEventError as exc:
        first = exc.reason
    common._SECONDS.clear()
    assert rfc3339_ns(whole + "Z") == seconds * 1_000_000_000  # the seconds are cached now
    try:
        again: int | str = rfc3339_ns(text)
    except MalformedEventError as exc:
        again = exc.reason
    assert first == again
    if dot and 0 < len(digits) <= 9 and zone:
        assert first == seconds * 1_000_000_000 + int(digits.ljust(9, "0"))
