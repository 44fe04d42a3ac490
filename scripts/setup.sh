#!/usr/bin/env bash
# Creates .venv with bindrift installed (editable). Usage: scripts/setup.sh [--dev]
# Every dependency comes from a lock file with hashes (requirements.lock, or requirements-dev.lock with the
# test and bench extras): pip refuses any file whose hash is not in it. scripts/lock.sh regenerates them.
set -euo pipefail
cd "$(dirname "$0")/.."
lock=requirements.lock
if [ "${1:-}" = "--dev" ]; then
  lock=requirements-dev.lock
fi
# What the build needs from the system: venv, and gcc with the Python headers for the compiled ELF reader.
# Installed here when missing on a Debian-like machine as root; elsewhere named before anything fails.
include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if ! python3 -c 'import ensurepip, venv' 2>/dev/null || ! command -v gcc >/dev/null || [ ! -f "$include/Python.h" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq || echo "apt-get update reported errors; continuing" >&2
    apt-get install -y -qq --no-install-recommends python3-venv python3-dev gcc libc6-dev >/dev/null
  else
    echo "setup.sh: needs python3-venv, python3-dev and gcc (install them, e.g. with apt-get)" >&2
    exit 1
  fi
fi
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check --require-hashes --only-binary :all: -r "$lock"
# The project itself: no dependencies of its own to fetch, built with the locked setuptools and wheel; its
# compiled ELF reader (src/bindrift/analysis/elf/_native.c) needs gcc and the Python headers (python3-dev).
.venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
# An editable install leaves the sources uncompiled; with PYTHONDONTWRITEBYTECODE set (as on CI and
# many hosts) every run would recompile them: ~20 ms of start-up per command, measured.
.venv/bin/python -m compileall -q src
