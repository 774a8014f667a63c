#!/usr/bin/env bash
# Copies the image's runtime/rootfs tree (uploaded to $WORKING_DIR/rootfs) onto
# /, the way amazon-eks-ami installs its runtime/rootfs: today that is the
# image configuration /etc/nodehealthd/config.yaml.
#
# Environment (set by al2023.pkr.hcl): WORKING_DIR, ACCELERATOR.
set -euo pipefail

log() { printf 'configure-nodehealthd: %s\n' "$*"; }
die() { printf 'configure-nodehealthd: ERROR: %s\n' "$*" >&2; exit 1; }

: "${WORKING_DIR:?WORKING_DIR is not set}"
ACCELERATOR="${ACCELERATOR:-standard}"
rootfs="$WORKING_DIR/rootfs"
[[ -d "$rootfs" ]] || die "$rootfs was not uploaded"

# Files become root-owned, 0755 if executable else 0644, whatever modes the
# upload produced; directories that already exist keep their owner and mode.
# The RPM may ship its own config.yaml (%config(noreplace)): ours replaces it
# and rpm -V reports it as a modified config file, as intended.
while IFS= read -r -d '' f; do
  rel="${f#"$rootfs"}"
  mode=0644
  [[ -x "$f" ]] && mode=0755
  install -D -o root -g root -m "$mode" "$f" "$rel"
  log "installed $rel ($mode)"
done < <(find "$rootfs" -type f -print0)

# Nothing accelerator-specific is needed: nodehealthd detects NVIDIA and
# Neuron devices at start and only then monitors AcceleratedHardwareReady.
log "configured for the $ACCELERATOR flavour"
