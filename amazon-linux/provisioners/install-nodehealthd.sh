#!/usr/bin/env bash
# Installs the uploaded nodehealthd RPM and enables (does not start) its unit.
#
# Environment (set by al2023.pkr.hcl):
#   NODEHEALTHD_RPM         path of the uploaded RPM on this instance
#   NODEHEALTHD_RPM_SHA256  optional expected SHA-256 of that file
#   EXPECTED_ARCH           x86_64 or aarch64 (uname -m of the target)
set -euo pipefail

log() { printf 'install-nodehealthd: %s\n' "$*"; }
die() { printf 'install-nodehealthd: ERROR: %s\n' "$*" >&2; exit 1; }

: "${NODEHEALTHD_RPM:?NODEHEALTHD_RPM is not set}"
: "${EXPECTED_ARCH:?EXPECTED_ARCH is not set}"
NODEHEALTHD_RPM_SHA256="${NODEHEALTHD_RPM_SHA256:-}"

[[ -f "$NODEHEALTHD_RPM" ]] || die "RPM not found at $NODEHEALTHD_RPM"

machine=$(uname -m)
[[ "$machine" == "$EXPECTED_ARCH" ]] ||
  die "build instance is $machine but the template was asked for $EXPECTED_ARCH"

if [[ -n "$NODEHEALTHD_RPM_SHA256" ]]; then
  actual=$(sha256sum "$NODEHEALTHD_RPM" | cut -d' ' -f1)
  [[ "$actual" == "$NODEHEALTHD_RPM_SHA256" ]] ||
    die "SHA-256 mismatch for $NODEHEALTHD_RPM: got $actual, want $NODEHEALTHD_RPM_SHA256"
  log "SHA-256 verified"
fi

name=$(rpm -qp --queryformat '%{NAME}' "$NODEHEALTHD_RPM")
rpm_arch=$(rpm -qp --queryformat '%{ARCH}' "$NODEHEALTHD_RPM")
[[ "$name" == "nodehealthd" ]] || die "$NODEHEALTHD_RPM is package '$name', not nodehealthd"
[[ "$rpm_arch" == "$EXPECTED_ARCH" ]] ||
  die "$NODEHEALTHD_RPM is built for $rpm_arch, this image is $EXPECTED_ARCH"

# The package set of the official EKS AMI is what AWS tested; installing with
# every repository disabled keeps this bake from upgrading or pulling anything
# else, and fails loudly if the RPM needs a dependency the AMI lacks.
log "installing $(rpm -qp "$NODEHEALTHD_RPM")"
dnf install -y --disablerepo='*' --setopt=install_weak_deps=False "$NODEHEALTHD_RPM"

systemctl daemon-reload
# Enable only: the unit must first start on the node's real first boot, with
# that boot's kubelet credentials and an empty state directory.
systemctl enable nodehealthd.service
if systemctl is-active --quiet nodehealthd.service; then
  log "the package started nodehealthd during the bake; stopping it"
  systemctl stop nodehealthd.service
fi
log "installed $(rpm -q nodehealthd); unit $(systemctl is-enabled nodehealthd.service)"
