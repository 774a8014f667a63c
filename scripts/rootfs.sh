#!/usr/bin/env bash
# Builds, once, a Debian rootfs that systemd-nspawn can boot (a real systemd
# for e2e/systemd) and caches it as a zstd tarball outside the repository.
# Prints the tarball's path. Restoring the tarball takes ~2 s; debootstrap
# takes ~100 s, so tests never debootstrap themselves.
#
# The include list is part of the file name, so changing it builds a new
# tarball instead of silently reusing one without the new package.
#   procps  kill (the unit's ExecReload) and pgrep, as on any real Debian
#           system (Priority: important, but not in minbase)
#   iptables  the iptables probe's iptables-save, which needs the unit's
#           CAP_NET_ADMIN: the e2e suite checks that the sandbox lets it work
#   rpm     lets the e2e suite run the RPM's scriptlets (rpm -i --nodeps)
#           without network access from the container.
set -euo pipefail
SUITE=${ROOTFS_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${NODEHEALTHD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nodehealthd}
INCLUDE=systemd,systemd-sysv,dbus,libpam-systemd,iproute2,iptables,ca-certificates,procps,rpm
TAG=$(printf '%s' "$INCLUDE" | sha256sum | cut -c1-8)
OUT=$CACHE/rootfs-$SUITE-$TAG.tar.zst
if [ -s "$OUT" ]; then
	echo "$OUT"
	exit 0
fi
for t in debootstrap zstd; do
	command -v "$t" >/dev/null || {
		echo "rootfs.sh: $t missing (run scripts/install-test-deps.sh)" >&2
		exit 1
	}
done
mkdir -p "$CACHE/debs"
W=$(mktemp -d "$CACHE/rootfs-build.XXXXXX")
trap 'rm -rf "$W"' EXIT
debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$INCLUDE" \
	"$SUITE" "$W/root" "$MIRROR" >&2
# A fresh machine-id per boot (empty file) keeps containers booted from the
# same tarball from sharing journal directories.
: >"$W/root/etc/machine-id"
rm -rf "$W/root/var/cache/apt/archives/"*.deb "$W/root/var/lib/apt/lists/"*
tar -C "$W/root" --numeric-owner -I 'zstd -T0 -3' -cf "$W/rootfs.tar.zst" .
mv "$W/rootfs.tar.zst" "$OUT"
# Tarballs of earlier include lists are never used again.
find "$CACHE" -maxdepth 1 -name "rootfs-$SUITE-*.tar.zst" ! -path "$OUT" -delete
echo "$OUT"
