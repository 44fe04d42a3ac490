"""Which executions need more than the per-container fanotify marks."""

from __future__ import annotations

from bindrift.detectors.exec_paths import unusual_exec


def test_loader_memfd_and_shm() -> None:
    assert unusual_exec("/lib64/ld-linux-x86-64.so.2", ["/lib64/ld-linux-x86-64.so.2", "./added", "-x"], "/tmp") == (
        "loader", "/tmp/added")  # fmt: skip
    musl = ["ld", "--library-path", "/l", "--list", "/opt/a"]
    assert unusual_exec("/lib/ld-musl-x86_64.so.1", musl, "/") == ("loader", "/opt/a"), "option values skipped"
    assert unusual_exec("/lib/ld-linux-aarch64.so.1", ["ld.so"], "/") is None, "the loader alone runs nothing"
    assert unusual_exec("/memfd:payload (deleted)", ["x"], "/") == ("memfd", "/memfd:payload (deleted)")
    assert unusual_exec("/dev/shm/.x", ["/dev/shm/.x"], "/") == ("shm", "/dev/shm/.x")
    assert unusual_exec("/usr/bin/ls", ["ls"], "/") is None
