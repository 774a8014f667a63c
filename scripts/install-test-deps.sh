#!/usr/bin/env bash
# Installs the Debian packages the systemd, packaging and journal tests need.
# Idempotent: packages already installed are not fetched again, and apt is
# only updated when something is missing, so CI pays for it once per machine.
#
#   systemd-container  systemd-nspawn, to boot a real systemd for e2e/systemd
#   debootstrap        builds the Debian rootfs that nspawn boots
#   zstd               compresses the cached rootfs tarball
#   lintian rpmlint    package linters (make packages-lint)
#   rpm                rpm -qp inspection; scriptlets are run in the container
#   libsystemd-dev     sd-journal headers: cgo build of the journal source
#   systemd-journal-remote  writes .journal fixture files for journal tests
#   e2fsprogs util-linux    mkfs.ext4, mount -o loop and fsfreeze: the hung-disk test (e2e/faults)
set -euo pipefail
pkgs=(systemd-container debootstrap zstd lintian rpmlint rpm libsystemd-dev systemd-journal-remote e2fsprogs util-linux)
missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-test-deps: all present"
	exit 0
fi
echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
