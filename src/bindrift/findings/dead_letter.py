"""A batch the store refuses is split in halves until the detections that still fail stand alone: the rest is
stored (one transaction per part, so still exactly once), and a detection that fails alone is set aside as a
dead letter with its reason, plus a *Coverage degraded* finding on its node so the loss is seen where findings
are looked at."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, TypeVar

import msgspec

from bindrift.schema.bounds import bound_detection, bound_text
from bindrift.schema.dead_letter import MAX_BODY, MAX_ERROR, DeadLetter
from bindrift.schema.finding import Detection, Evidence, FileInfo, Resource

if TYPE_CHECKING:
    from bindrift.findings.pipeline import FindingsPipeline

log = logging.getLogger(__name__)
T = TypeVar("T")
COVERAGE_PATH = "bindrift:dead-letters"


def store_bisected(items: Sequence[T], store: Callable[[Sequence[T]], None],
                   whole: Callable[[Exception], bool] = lambda _: False) -> list[tuple[T, Exception]]:  # fmt: skip
    """Store `items` with `store` (one transaction a call), halving what fails; returns each item that failed
    alone with its error. One bad item among n costs about 2·log2(n) more transactions. An error for which
    `whole` is true (the store unreachable) fails every item of the part at once, without halving."""
    try:
        store(items)
        return []
    except Exception as exc:
        if len(items) == 1 or whole(exc):
            return [(item, exc) for item in items]
    middle = len(items) // 2
    return store_bisected(items[:middle], store, whole) + store_bisected(items[middle:], store, whole)


def describe(exc: BaseException) -> str:
    """The reason an operator reads: the exception's type and first lines, bounded."""
    return bound_text(f"{type(exc).__name__}: {exc}", MAX_ERROR)


def set_aside(pipeline: FindingsPipeline, detection: Detection, body: bytes, message_id: str, error: str,
              deliveries: int, source: Literal["bus", "local"]) -> None:  # fmt: skip
    """Record `detection` (encoded as `body`) as a dead letter, and a Coverage degraded finding on its node (one
    per node, counting them). Setting the same message aside again changes neither count."""
    node = bound_detection(detection).resource.node
    now = datetime.now(UTC)
    pipeline.store.add_dead_letter(DeadLetter(message_id, source, node, error, deliveries, now, len(body),
                                              body[:MAX_BODY]))  # fmt: skip
    summary = f"a detection the store refused was set aside after {deliveries} attempt(s): {error}"
    coverage = Detection(
        category="Coverage degraded", observed_at=now, resource=Resource(node=node),
        file=FileInfo(path=COVERAGE_PATH), source="bindrift",
        evidence=[Evidence("dead-letter", summary, {"message_id": message_id, "error": error,
                                                    "deliveries": deliveries, "source": source})],
    )  # fmt: skip
    pipeline.store_batch([coverage], [f"dead-letter:{message_id}"])
    log.error("detection %s set aside as a dead letter after %d attempt(s): %s", message_id, deliveries, error)


def encode(detection: Detection) -> bytes:
    """The bytes a detection travels as (its message id is their hash)."""
    return msgspec.json.encode(detection)
