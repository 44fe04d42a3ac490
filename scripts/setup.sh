#!/usr/bin/env bash
# Creates .venv with bindrift installed (editable). Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check --upgrade pip
if [ "${1:-}" = "--dev" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test,bench]'
else
  .venv/bin/pip install -q --disable-pip-version-check -e .
fi
# An editable install leaves the sources uncompiled; with PYTHONDONTWRITEBYTECODE set (as on CI and
# many hosts) every run would recompile them: ~20 ms of start-up per command, measured.
.venv/bin/python -m compileall -q src
