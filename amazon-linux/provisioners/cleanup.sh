#!/usr/bin/env bash
# Removes what this bake left behind so every node starts clean. Runs last.
#
# Environment (set by al2023.pkr.hcl): WORKING_DIR.
set -euo pipefail

log() { printf 'cleanup: %s\n' "$*"; }

: "${WORKING_DIR:?WORKING_DIR is not set}"

# nodehealthd must never ship state from the build instance: its findings,
# journal cursor and kmsg sequence belong to the bake's boot, not the node's.
systemctl stop nodehealthd.service 2>/dev/null || true
if [[ -d /var/lib/nodehealthd ]]; then
  find /var/lib/nodehealthd -mindepth 1 -delete
  log "emptied /var/lib/nodehealthd"
fi

rm -rf -- "$WORKING_DIR"
dnf clean all >/dev/null
rm -rf /var/cache/dnf

# Per-instance identity and logs of the build instance. The official EKS AMI
# was cleaned the same way before AWS registered it; booting it once for the
# bake recreated these.
if command -v cloud-init >/dev/null; then
  cloud-init clean --logs
fi
rm -f /etc/ssh/ssh_host_*
rm -f /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys
truncate -s 0 /etc/machine-id
rm -rf /var/log/journal/*
find /var/log -type f \( -name '*.log' -o -name 'messages' -o -name 'secure' \) -exec truncate -s 0 {} +
rm -f /root/.bash_history /home/*/.bash_history
log "done"
