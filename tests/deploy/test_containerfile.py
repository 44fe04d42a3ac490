"""The Containerfile's structure (the image itself is built by deploy/build-image.sh, which needs a minute
and the package indexes: docs/deployment.md records its run)."""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

PROJECT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((PROJECT / "pyproject.toml").read_text())
OCI = "org.opencontainers.image."
DIGEST = "sha256:" + "5e" * 32


@pytest.fixture(scope="module")
def parser() -> DockerfileParser:
    text = io.BytesIO((PROJECT / "Containerfile").read_bytes())
    return DockerfileParser(fileobj=text, build_args={"BASE_IMAGE": "localhost/bindrift-base", "BASE_DIGEST": DIGEST})


def stages(parser: DockerfileParser) -> list[list[tuple[str, str]]]:
    """Instructions (name, value) of each stage, comments left out; the ARGs before the first FROM first."""
    result: list[list[tuple[str, str]]] = [[]]
    for item in parser.structure:
        if item["instruction"] == "FROM":
            result.append([])
        if item["instruction"] != "COMMENT":
            result[-1].append((item["instruction"], item["value"]))
    return result


def test_two_stages_on_one_base_pinned_by_digest(parser: DockerfileParser) -> None:
    preamble, build, runtime = stages(parser)
    assert preamble == [("ARG", "BASE_IMAGE=python:3.11-slim-bookworm"), ("ARG", "BASE_DIGEST")], (
        "no default digest: a build without one stops"
    )
    assert build[0] == ("FROM", "${BASE_IMAGE}@${BASE_DIGEST} AS build")
    assert runtime[0] == ("FROM", "${BASE_IMAGE}@${BASE_DIGEST}")
    assert parser.parent_images == [f"localhost/bindrift-base@{DIGEST}"] * 2
    assert all(re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", image) for image in parser.parent_images)


def test_the_app_is_installed_from_the_repository_with_pip(parser: DockerfileParser) -> None:
    _, build, runtime = stages(parser)
    runs = [value for name, value in build if name == "RUN"]
    assert len(runs) == 1
    steps = [shlex.split(step.replace("${PIP_CERT:+--cert \"$PIP_CERT\"}", "").replace(
        "${PIP_INDEX_URL:+--index-url \"$PIP_INDEX_URL\"}", "")) for step in runs[0].split("&&")]  # fmt: skip
    # A compiler and the Python headers first: pip builds the compiled ELF reader with the package.
    assert steps[:2] == [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "gcc", "libc6-dev", "python3-dev"],
    ]
    steps = steps[2:]
    assert steps[0] == ["python3", "-m", "venv", "/opt/bindrift"]
    assert steps[1] == ["/opt/bindrift/bin/pip", "install", "--quiet", "--require-hashes", "--only-binary", ":all:",
                        "-r", "requirements.lock"]  # fmt: skip
    assert steps[2] == ["/opt/bindrift/bin/pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "."]
    assert steps[-1] == ["/opt/bindrift/bin/bindrift", "--version"]
    copies = [value.split() for name, value in build if name == "COPY"]
    assert copies == [["pyproject.toml", "README.md", "requirements.lock", "./"], ["src", "./src"]]
    assert ("COPY", "--from=build /opt/bindrift /opt/bindrift") in runtime
    # The runtime stage adds only libbpf, to load the eBPF sensor the package carries as a compiled object.
    assert [value for name, value in runtime if name == "RUN"] == [
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends libbpf1 && rm -rf /var/lib/apt/lists/*"
    ]
    assert "sensors/ebpf/process.bpf.o" in PYPROJECT["tool"]["setuptools"]["package-data"]["bindrift"]


def test_what_the_build_copies_is_in_the_build_context() -> None:
    patterns = [line.strip() for line in (PROJECT / ".containerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    assert patterns[0] == "*"
    included = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    assert included == {"pyproject.toml", "README.md", "requirements.lock", "src"}
    assert all((PROJECT / name).exists() for name in included)


def test_entrypoint_user_environment_and_labels(parser: DockerfileParser) -> None:
    _, _, runtime = stages(parser)
    assert ("ENTRYPOINT", '["bindrift"]') in runtime
    assert "bindrift" in PYPROJECT["project"]["scripts"]
    assert ("USER", "0:0") in runtime
    env = parser.envs
    assert env["PATH"].startswith("/opt/bindrift/bin:")
    assert env["BINDRIFT_CONFIG"] == "/etc/bindrift/config.toml"
    labels = parser.labels
    assert {key.removeprefix(OCI): value for key, value in labels.items()} == {
        "title": "bindrift",
        "description": PYPROJECT["project"]["description"],
        "version": PYPROJECT["project"]["version"],
        "revision": "unknown",
        "licenses": PYPROJECT["project"]["license"],
    }


def test_the_build_script_is_valid_shell() -> None:
    script = PROJECT / "deploy" / "build-image.sh"
    assert script.stat().st_mode & 0o111
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "BASE_IMAGE=" in script.read_text()
