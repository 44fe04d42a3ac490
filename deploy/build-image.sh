#!/usr/bin/env bash
# Builds the bindrift image from the Containerfile without any container registry (as root): a Debian 12
# base with python3 made by mmdebstrap from this machine's own apt sources and imported into podman, then
# the Containerfile built on it (BASE_IMAGE pointing at that base) and `bindrift --version` run inside.
# Podman keeps its configuration and storage under WORKDIR; the base is reused while it is there.
#   deploy/build-image.sh [WORKDIR]        (default: .cache/image-build)
# Needs: podman, runc, mmdebstrap (apt-get install mmdebstrap); network to the Debian and Python package
# indexes (pip uses the CA bundle named by PIP_CERT, or the system's, inside the build).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(realpath -m "${1:-.cache/image-build}")
mkdir -p "$work"
cat >"$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/runroot"\n' "$work" "$work" \
  >"$work/storage.conf"
podman() { CONTAINERS_CONF="$work/containers.conf" CONTAINERS_STORAGE_CONF="$work/storage.conf" command podman "$@"; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)
base=localhost/bindrift-base:bookworm
image=localhost/bindrift:$version
seconds() { date +%s.%N; }
elapsed() { awk -v s="$1" -v e="$(seconds)" 'BEGIN { printf "%.1f", e - s }'; }

if ! podman image exists "$base"; then
  sources=/etc/apt/sources.list.d/debian.sources
  [ -f "$sources" ] || sources=/etc/apt/sources.list
  start=$(seconds)
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates,libbpf1 \
    bookworm "$work/base.tar" "$sources"
  podman import --quiet --change 'CMD ["/bin/bash"]' "$work/base.tar" "$base" >/dev/null
  rm -f "$work/base.tar"
  echo "base image $base: $(elapsed "$start") s (mmdebstrap + podman import)"
fi

cert=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
start=$(seconds)
podman build --quiet --network host --file Containerfile \
  --build-arg BASE_IMAGE="${base%:*}" --build-arg BASE_DIGEST="$(podman image inspect --format '{{.Digest}}' "$base")" \
  --build-arg VERSION="$version" \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg PIP_CERT=/run/bindrift-build/ca.crt --volume "$cert:/run/bindrift-build/ca.crt:ro" \
  --tag "$image" . >/dev/null
echo "image $image: $(elapsed "$start") s (podman build)"
podman image inspect --format '{{.Size}}' "$image" | awk '{printf "image size: %.1f MiB\n", $1 / 1048576}'
podman run --rm --network none "$image" --version

# The API as the manifests run it: uid 65532, read-only root, /tmp a tmpfs, tokens from the environment.
podman run --rm --network none --user 65532:65532 --read-only --tmpfs /tmp \
  -e BINDRIFT_DB=sqlite:////tmp/api.db -e BINDRIFT_ADMIN_TOKEN=smoke-admin-token-0123456789 --entrypoint sh "$image" -c '
    bindrift serve --host 127.0.0.1 --port 8080 & server=$!
    python3 - <<PY
import json, time, urllib.request
for _ in range(100):
    try:
        body = urllib.request.urlopen("http://127.0.0.1:8080/healthz", timeout=1).read()
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit("the API did not answer /healthz")
print("api as uid 65532, read-only root: /healthz", json.loads(body))
PY
    kill $server'

# The agent as the DaemonSet runs it: root, privileged, the host PID and network namespaces, runtime
# state and storage read-only at their host paths, for three seconds (local store instead of the bus).
mounts=()
for dir in /run/runc /run/containerd /run/crio /run/docker /var/lib/containerd /var/lib/containers /var/lib/docker; do
  [ -d "$dir" ] && mounts+=(--volume "$dir:$dir:ro")
done
podman run --rm --privileged --pid host --network host --read-only --tmpfs /tmp "${mounts[@]}" \
  "$image" watch --node-name smoke --duration 3 --db sqlite:////tmp/agent.db >/dev/null
echo "agent as the DaemonSet runs it: ran 3 s and exited 0"
