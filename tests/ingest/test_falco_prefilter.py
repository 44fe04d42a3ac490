"""The raw-byte filter of Falco alerts is sound: whatever it drops, the full decode would have dropped too, and
counted as the same kind."""

from __future__ import annotations

import json

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from bindrift.sensors.ingest import falco

TYPES = ["execve", "execveat", "open", "openat", "openat2", "creat", "connect", "read", "dup2", "", "<NA>",
         "exec\\ve", "openat\"", "ptrace"]  # fmt: skip
TRICKY = st.sampled_from(['"evt.type":"connect"', ',"evt.type":"read",', '{"evt.is_open_write":false}', "<NA>",
                          '\\"evt.type\\":\\"dup2\\"', "evt.type", "false"])  # fmt: skip
VALUES = st.one_of(st.none(), st.booleans(), st.sampled_from(["true", "false", "<NA>"]), st.integers(-5, 5))


@st.composite
def alerts(draw: st.DrawFn) -> bytes:
    fields: dict[str, object] = {}
    if draw(st.booleans()):
        fields["evt.type"] = draw(st.sampled_from(TYPES))
    for key in ("evt.is_open_write", "proc.is_exe_upper_layer", "proc.is_exe_from_memfd"):
        if draw(st.booleans()):
            fields[key] = draw(VALUES)
    for key in ("fd.name", "proc.cmdline", "evt.arg.flags", "proc.name"):
        if draw(st.booleans()):
            fields[key] = draw(st.one_of(TRICKY, st.sampled_from(["/usr/bin/x", "x", "EXE_UPPER_LAYER"])))
    items = list(fields.items())
    order = draw(st.permutations(range(len(items))))
    record = {"rule": draw(st.sampled_from(["Write below etc", "Terminal shell in container", "Other", ""])),
              "source": draw(st.sampled_from(["syscall", "k8s_audit", None])),
              "output": draw(TRICKY), "output_fields": dict(items[i] for i in order)}  # fmt: skip
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    return json.dumps(record, separators=separators).encode()


@settings(max_examples=2000, deadline=None)
@given(alerts())
def test_what_the_raw_filter_drops_the_decode_drops(line: bytes) -> None:
    if not falco._filtered_raw(line):
        return
    try:
        alert = falco._DECODER.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return  # a line the decode rejects: dropping it keeps no event either
    assert alert.output_fields is not None
    fields = falco._without_na(alert.output_fields)
    if alert.source not in (None, "syscall"):
        return  # dropped for its source either way
    assert falco._kind(alert.rule, fields) == ("", falco._filtered_raw(line)), "dropped, and counted the same"
