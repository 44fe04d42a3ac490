#!/usr/bin/env bash
# Fetches the real binaries the tests use, with a private apt configuration (the system's apt
# sources, dpkg architectures and caches are left untouched):
#   - busybox-static, dropbear-bin and curl built for other Debian architectures;
#   - upx-ucl 4.2.2 from bookworm-backports.
# Usage: fetch-binaries.sh DEST   (idempotent; DEST/.complete marks a finished fetch)
set -euo pipefail
dest=${1:?usage: fetch-binaries.sh DEST}
[ -f "$dest/.complete" ] && exit 0
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work="$dest/.apt"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"

uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$uri" ]; then
  uri=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
key=/usr/share/keyrings/debian-archive-keyring.gpg
arches="amd64,arm64,armhf,mipsel,i386,s390x,ppc64el,mips64el"
cat > "$work/sources.list" <<SRC
deb [arch=$arches signed-by=$key] $uri bookworm main
deb [arch=amd64 signed-by=$key] $uri bookworm-backports main
SRC
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
          -o "APT::Architectures=$arches" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" -qq update

pkgs=(busybox-static:arm64 busybox-static:armhf busybox-static:mipsel busybox-static:i386
      busybox-static:s390x busybox-static:ppc64el busybox-static:mips64el busybox-static:amd64
      dropbear-bin:arm64 dropbear-bin:armhf curl:arm64 curl:armhf curl:mipsel
      upx-ucl/bookworm-backports)
(cd "$work/debs" && apt-get "${apt_opts[@]}" -qq download "${pkgs[@]}")

for deb in "$work/debs"/*.deb; do
  name=$(dpkg-deb -f "$deb" Package)
  arch=$(dpkg-deb -f "$deb" Architecture)
  out="$dest/$name-$arch"
  rm -rf "$out" && mkdir -p "$out" && dpkg-deb -x "$deb" "$out"
done
rm -rf "$work"
touch "$dest/.complete"
