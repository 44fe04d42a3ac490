"""A real helm binary for the chart tests (tests/deploy/fetch-helm.sh, cached in .cache/helm)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm executable: $BINDRIFT_HELM, or the one fetch-helm.sh puts in .cache/helm."""
    if os.environ.get("BINDRIFT_HELM"):
        return Path(os.environ["BINDRIFT_HELM"])
    dest = PROJECT / ".cache" / "helm"
    result = subprocess.run(["bash", str(PROJECT / "tests" / "deploy" / "fetch-helm.sh"), str(dest)],
                            check=False, capture_output=True, text=True, timeout=300)  # fmt: skip
    if result.returncode != 0:
        message = f"could not fetch helm: {result.stderr[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return dest / "helm"
