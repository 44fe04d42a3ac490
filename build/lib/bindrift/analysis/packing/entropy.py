"""Shannon entropy of file bytes, computed with numpy (≈20× faster than pure Python, perf anchors §8)."""

from __future__ import annotations

from bindrift.analysis.source import ByteSource

BLOCK = 64 * 1024
MAX_SAMPLED = 16 * 2**20


def entropy(src: ByteSource, offset: int, length: int) -> float:
    """Bits per byte over `length` bytes at `offset`; ranges longer than 16 MiB are sampled in 64 KiB
    blocks spread evenly over the range, so the cost is bounded whatever the segment claims."""
    import numpy as np  # lazy: only files that reach the packing heuristics pay for the import

    length = max(0, min(length, src.size - offset))
    if length == 0:
        return 0.0
    if length <= MAX_SAMPLED:
        starts = range(offset, offset + length, BLOCK)
    else:
        step = length // (MAX_SAMPLED // BLOCK)
        starts = range(offset, offset + length - BLOCK, step)
    counts = np.zeros(256, dtype=np.int64)
    for start in starts:
        chunk = src.read(start, min(BLOCK, offset + length - start))
        counts += np.bincount(np.frombuffer(chunk, dtype=np.uint8), minlength=256)
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())
