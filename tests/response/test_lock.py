"""The lock files cover pyproject's dependencies with versions its ranges allow, every pin carries hashes,
and scripts/setup.sh installs from them with --require-hashes (the project itself without dependencies)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def _lock(name: str) -> dict[str, tuple[str, int]]:
    """name → (version, number of hashes) of each pin."""
    pins: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (PROJECT / name).read_text().splitlines():
        if found := PIN.match(line):
            current = canonicalize_name(found.group(1))
            pins[current] = (found.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def _project() -> dict[str, object]:
    return tomllib.loads((PROJECT / "pyproject.toml").read_text())


def _required(extras: tuple[str, ...]) -> list[Requirement]:
    project = _project()
    meta = project["project"]
    assert isinstance(meta, dict)
    wanted = [*meta["dependencies"], *project["build-system"]["requires"]]  # type: ignore[index]
    for extra in extras:
        wanted += meta["optional-dependencies"][extra]
    return [Requirement(text) for text in wanted]


@pytest.mark.parametrize(("lock", "extras"), [("requirements.lock", ()), ("requirements-dev.lock", ("test", "bench"))])
def test_the_lock_covers_pyproject(lock: str, extras: tuple[str, ...]) -> None:
    pins = _lock(lock)
    assert pins and all(hashes >= 1 for _version, hashes in pins.values()), "every pin has its hashes"
    for requirement in _required(extras):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in {lock}: run scripts/lock.sh"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, outside pyproject's {requirement}: run scripts/lock.sh"
        )


def test_setup_installs_from_the_locks_with_hashes() -> None:
    setup = (PROJECT / "scripts" / "setup.sh").read_text()
    assert "--require-hashes" in setup and "lock=requirements.lock" in setup and "lock=requirements-dev.lock" in setup
    assert re.search(r"pip install [^\n]*--no-deps[^\n]*-e \.", setup), "the project itself adds no dependency"
    assert "-e '.[" not in setup and "-e ." in setup
