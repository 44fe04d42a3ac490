#!/usr/bin/env bash
# Regenerates the hash-pinned lock files from pyproject.toml, for CPython 3.11 on Linux x86_64:
#   requirements.lock      the runtime dependencies, and the build backend (setuptools, wheel)
#   requirements-dev.lock  the same, plus the `test` and `bench` extras (what scripts/setup.sh --dev installs)
# Run it after changing pyproject's dependencies and commit both files. Versions already pinned are kept
# unless the change needs otherwise; `scripts/lock.sh --upgrade` moves every pin to the newest allowed.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install -q --disable-pip-version-check "pip-tools==7.7.0"
compile=("$tools/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url
         --no-emit-find-links --all-build-deps --no-header "$@")
"${compile[@]}" -o requirements.lock pyproject.toml
"${compile[@]}" --extra test --extra bench -o requirements-dev.lock pyproject.toml
