#!/usr/bin/env bash
# Sets up bindrift and runs its main job on this machine: a scan of the system's binaries.
# Extra arguments are passed to `bindrift scan` (default paths: /usr/bin /usr/sbin /usr/lib).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/bindrift ] || scripts/setup.sh
if [ "$#" -eq 0 ]; then set -- /usr/bin /usr/sbin /usr/lib; fi
exec .venv/bin/bindrift scan "$@"
