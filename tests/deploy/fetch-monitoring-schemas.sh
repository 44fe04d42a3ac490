#!/usr/bin/env bash
# Installs the Prometheus Operator object schemas (npm package @kubernetes-models/prometheus-operator, pinned
# with its dependencies and their integrity hashes in tests/deploy/monitoring/package-lock.json) and
# validate.mjs into DEST, for the ServiceMonitors of deploy/. Usage: tests/deploy/fetch-monitoring-schemas.sh DEST
set -euo pipefail
here=$(cd "$(dirname "$0")/monitoring" && pwd)
dest=$(realpath -m "$1")
if [ -f "$dest/node_modules/.installed" ] && cmp -s "$here/package-lock.json" "$dest/package-lock.json"; then
  cp "$here/validate.mjs" "$dest/validate.mjs"
  exit 0
fi
rm -rf "$dest"
mkdir -p "$dest"
cp "$here/package.json" "$here/package-lock.json" "$here/validate.mjs" "$dest/"
(cd "$dest" && npm ci --silent --no-audit --no-fund --ignore-scripts >/dev/null)
touch "$dest/node_modules/.installed"
