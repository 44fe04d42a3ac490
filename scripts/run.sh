#!/usr/bin/env bash
# Sets up bindrift and runs its main job on this machine: a scan of the system's binaries whose
# suspicious ones are stored as findings in the embedded SQLite store (BINDRIFT_DB to change it), the
# stored findings listed, then the Incident Explorer served on http://127.0.0.1:8080/ until Ctrl-C
# (BINDRIFT_NO_UI=1 skips it). Extra arguments are passed to `bindrift scan` (default: /usr/bin /usr/sbin
# /usr/lib).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$root/.venv/bin/bindrift" ] || "$root/scripts/setup.sh"
if [ "$#" -eq 0 ]; then set -- /usr/bin /usr/sbin /usr/lib; fi
status=0
"$root/.venv/bin/bindrift" scan --store "$@" || status=$?
"$root/.venv/bin/bindrift" findings list
if [ -z "${BINDRIFT_NO_UI:-}" ]; then
  "$root/.venv/bin/bindrift" serve --host 127.0.0.1 --port "${BINDRIFT_PORT:-8080}" || true
fi
exit "$status"
