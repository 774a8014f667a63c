#!/usr/bin/env bash
# Installs the pinned nfpm (package builder) into a cache directory outside
# the repository, once, and prints the binary's path. A versioned file name
# means bumping NFPM_VERSION installs the new one instead of reusing the old.
set -euo pipefail
V=${NFPM_VERSION:-v2.45.2}
BIN=${NODEHEALTHD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nodehealthd}/bin
OUT=$BIN/nfpm-$V
if [ -x "$OUT" ]; then
	echo "$OUT"
	exit 0
fi
mkdir -p "$BIN"
W=$(mktemp -d "$BIN/.nfpm.XXXXXX")
trap 'rm -rf "$W"' EXIT
# nfpm is a tool, not a dependency of the module: GOFLAGS/GOWORK from the
# caller's environment must not pull it into go.mod.
(cd "$W" && GOWORK=off GOFLAGS= GOBIN="$W" CGO_ENABLED=0 go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$V") >&2
mv "$W/nfpm" "$OUT"
echo "$OUT"
