"""Image name, digest and container name of a podman container, from its containers/storage metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_JSON = 16 * 2**20


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes()[:MAX_JSON])
    except (OSError, ValueError):
        return None


def podman_image(rootfs: str, container_id: str) -> tuple[str, str, str]:
    """(image name, image digest, container name); empty strings when unknown. `rootfs` is the merged
    directory `<graphroot>/overlay/<layer>/merged`, which locates the storage."""
    graphroot = Path(rootfs).parent.parent.parent
    containers = _load(graphroot / "overlay-containers" / "containers.json")
    entry = next((c for c in containers or [] if isinstance(c, dict) and c.get("id") == container_id), None)
    if entry is None:
        return "", "", ""
    names = entry.get("names") or [""]
    images = _load(graphroot / "overlay-images" / "images.json") or []
    image = next((i for i in images if isinstance(i, dict) and i.get("id") == entry.get("image")), None)
    if image is None:
        return "", "", str(names[0])
    image_names = image.get("names") or [str(entry.get("image"))]
    return str(image_names[0]), str(image.get("digest", "")), str(names[0])
