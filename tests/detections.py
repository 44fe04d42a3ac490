"""Detections as the runtime agent and the scanner build them, for the findings and store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from bindrift.schema.finding import Detection, FileInfo, ProcessInfo, ProcessRef, Resource
from bindrift.schema.triage import CheckResult

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SHA_A = "a" * 64
SHA_B = "b" * 64

POD = Resource(node="node-1", cluster="prod-eu", namespace="shop", pod="web-0", container_id="c0ffee" * 10 + "abcd",
               container_name="app", image="registry.example/shop/web:1.4", image_digest="sha256:" + "d" * 64,
               runtime="containerd")  # fmt: skip
FOREIGN = CheckResult(category="incompatible-architecture", check="foreign_arch", severity="high",
                      title="aarch64 binary on a x86_64 host", detail="…", ref="A1")  # fmt: skip
PACKED = CheckResult(category="packed", check="upx", severity="low", title="Packed with UPX", detail="…", ref="C1")


def detection(minutes: float = 0, **changes: Any) -> Detection:
    """An Added Binary Executed detection in the shop/web-0 pod, `minutes` after T0, with `changes`."""
    base = Detection(
        category="Added Binary Executed", observed_at=T0 + timedelta(minutes=minutes), resource=POD,
        file=FileInfo(path="/tmp/x", sha256=SHA_A, size=1000), source="agent",
        process=ProcessInfo(pid=4242, comm="x", exe="/tmp/x", args=["/tmp/x", "--serve"]),
        writer=ProcessInfo(pid=4200, comm="cp", exe="/bin/busybox", args=["cp", "/bin/busybox", "/tmp/x"],
                           lineage=[ProcessRef(pid=1, comm="sh", exe="/bin/busybox")]),
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)
