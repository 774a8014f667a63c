#!/usr/bin/env bash
# Runs nodehealthd's NVML checks once on an NVIDIA host and prints a per-GPU
# report: every NVML read with its return code, then each GPU's readings
# (temperature, ECC, retired pages / remapped rows, NVLink, PCIe link
# current/max, clock event reasons, fabric state and health, InfoROM) with
# the findings two polls raise, exactly as the daemon would judge them.
# When a nodehealthd runs on the host, its own view (nodehealthctl gpu, or
# $NODEHEALTHCTL gpu) follows for comparison.
#
# Run it as root (NVML needs the device files) from a checkout:
#   scripts/gpu-check.sh [nvmlcheck flags: -wait 30s, -o json, -library PATH, -imds=false]
# Without Go on the host, build the checker elsewhere and point at it:
#   CGO_ENABLED=1 GOARCH=amd64 go build -o nvmlcheck ./internal/nvidia/cmd/nvmlcheck
#   NVMLCHECK=./nvmlcheck scripts/gpu-check.sh
#
# Exit status (nvmlcheck's): 0 every check passed and every NVML read
# worked; 1 a check raised a finding or an NVML read failed; 2 NVML cannot
# be used (no driver, driver/library mismatch, hung); 3 the checker could
# not be built.
set -uo pipefail
cd "$(dirname "$0")/.."

checker=${NVMLCHECK:-}
if [ -z "$checker" ]; then
	if ! command -v go >/dev/null; then
		echo "gpu-check: Go is not installed; build nvmlcheck elsewhere and set NVMLCHECK (see the header of $0)" >&2
		exit 3
	fi
	dir=$(mktemp -d)
	trap 'rm -rf "$dir"' EXIT
	if ! CGO_ENABLED=1 go build -o "$dir/nvmlcheck" ./internal/nvidia/cmd/nvmlcheck; then
		echo "gpu-check: cannot build ./internal/nvidia/cmd/nvmlcheck" >&2
		exit 3
	fi
	checker=$dir/nvmlcheck
fi
if [ ! -x "$checker" ]; then
	echo "gpu-check: NVMLCHECK=$checker is not an executable" >&2
	exit 3
fi

json=false
for a in "$@"; do
	case $a in -o=json | --o=json | json) json=true ;; esac
done

if ! $json; then
	echo "== host: $(uname -nr), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	[ "$(id -u)" -eq 0 ] || echo "gpu-check: not root: NVML may not open the GPUs" >&2
	if command -v nvidia-smi >/dev/null; then
		nvidia-smi -L 2>&1 | sed 's/^/  /'
	fi
	echo "== nvmlcheck"
fi
"$checker" "$@"
rc=$?

# The daemon's own view, when one runs here: the two should agree.
ctl=${NODEHEALTHCTL:-nodehealthctl}
if ! $json && [ "$rc" -le 1 ] && command -v "$ctl" >/dev/null; then
	echo
	echo "== nodehealthctl gpu (the running daemon's view)"
	if view=$("$ctl" gpu 2>&1); then
		echo "$view"
	else
		echo "  (none: $(echo "$view" | head -n 1))"
	fi
fi

case $rc in
0) echo "gpu-check: PASS" >&2 ;;
1) echo "gpu-check: FAIL (a check found a problem or an NVML read failed; see above)" >&2 ;;
*) echo "gpu-check: NVML cannot be used here (exit $rc)" >&2 ;;
esac
exit "$rc"
