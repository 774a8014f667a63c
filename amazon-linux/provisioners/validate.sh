#!/usr/bin/env bash
# Checks the baked result before the AMI is registered: a failure here fails
# the Packer build instead of shipping a broken image.
#
# Environment (set by al2023.pkr.hcl): KUBERNETES_VERSION.
set -euo pipefail

: "${KUBERNETES_VERSION:?KUBERNETES_VERSION is not set}"

log() { printf 'validate: %s\n' "$*"; }
failed=0
check() { # check DESCRIPTION COMMAND [ARG...]
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then
    log "ok   $what"
  else
    log "FAIL $what"
    failed=1
  fi
}

is_al2023() { grep -q '^VERSION_ID="2023' /etc/os-release; }
kubelet_matches() {
  local v
  v=$(kubelet --version | awk '{print $2}') # "Kubernetes v1.33.4-eks-…"
  [[ "$v" == "v${KUBERNETES_VERSION}."* ]]
}
# rpm -V lists every file that differs from the package; only config files
# (marked "c", such as our /etc/nodehealthd/config.yaml) may differ.
package_files_intact() {
  local out
  out=$(rpm -V nodehealthd) || true
  [[ -z "$out" ]] || ! grep -v '^.\{9\}  c ' <<<"$out"
}
unit_not_running() { ! systemctl is-active --quiet nodehealthd.service; }

# The source really is an EKS AL2023 node image of the requested version.
check "source is Amazon Linux 2023" is_al2023
check "nodeadm is installed" command -v nodeadm
check "kubelet is Kubernetes $KUBERNETES_VERSION" kubelet_matches

# nodehealthd is installed, enabled, not running, and its config is valid.
check "package nodehealthd is installed" rpm -q nodehealthd
check "package files are unmodified (config excepted)" package_files_intact
check "nodehealthd -version runs" /usr/bin/nodehealthd -version
check "unit is enabled" systemctl is-enabled --quiet nodehealthd.service
check "unit is not running during the bake" unit_not_running
check "systemd-analyze verify nodehealthd.service" systemd-analyze verify --man=no nodehealthd.service
# The privileged helper starts with the daemon through its socket (Wants=).
check "systemd-analyze verify the privileged helper" \
  systemd-analyze verify --man=no nodehealthd-helper.socket nodehealthd-helper.service
check "nodehealthctl rules validate (image config)" \
  /usr/bin/nodehealthctl rules validate --config /etc/nodehealthd/config.yaml

if ((failed)); then
  log "image validation FAILED (see FAIL lines above)"
  exit 1
fi
log "image validation passed"
