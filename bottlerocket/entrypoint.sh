#!/usr/bin/env bash
# Entry point of the nodehealthd Bottlerocket host container.
#
# Runs nodehealthd against the host, which a superpowered host container sees
# read-only at /.bottlerocket/rootfs, with its state on the container's
# persistent storage (/.bottlerocket/host-containers/current, which is
# /local/host-containers/nodehealthd on the host and survives reboots).
#
# The host container's user-data, when set, is the nodehealthd config.yaml
# (Bottlerocket decodes the base64 setting into .../current/user-data).
# Extra arguments are passed to nodehealthd.
set -euo pipefail

HOST_ROOT=${NODEHEALTHD_HOST_ROOT:-/.bottlerocket/rootfs}
PERSISTENT=${NODEHEALTHD_PERSISTENT_DIR:-/.bottlerocket/host-containers/current}
STATE_DIR="$PERSISTENT/state"
USER_DATA="$PERSISTENT/user-data"
CONFIG=/etc/nodehealthd/config.yaml

log() { printf 'nodehealthd-entrypoint: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# Only a superpowered host container gets the host root filesystem.
[[ -r "$HOST_ROOT/proc/sys/kernel/random/boot_id" ]] ||
  die "$HOST_ROOT is not the host root: run this image as a host container with superpowered = true"
grep -qs '^ID=bottlerocket' "$HOST_ROOT/etc/os-release" ||
  log "warning: $HOST_ROOT/etc/os-release does not say Bottlerocket"
[[ -d "$PERSISTENT" ]] ||
  die "$PERSISTENT is missing: this image is meant to run as a Bottlerocket host container"

mkdir -p "$STATE_DIR"
chmod 0750 "$STATE_DIR"

if [[ -s "$USER_DATA" ]]; then
  CONFIG="$USER_DATA"
  log "using the host container user-data as the config"
fi

# Nothing else to set up: nodehealthd reads every host path under --root,
# including the kubelet's kubeconfig (/etc/kubernetes/kubelet/kubeconfig on
# Bottlerocket) with the files and exec plugin it names, and systemd's D-Bus
# socket (/run/dbus/system_bus_socket).

log "starting nodehealthd (root $HOST_ROOT, state $STATE_DIR, config $CONFIG)"
exec nodehealthd \
  --root "$HOST_ROOT" \
  --state-dir "$STATE_DIR" \
  --config "$CONFIG" \
  "$@"
