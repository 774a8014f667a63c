#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy into a cache
# directory outside the repository, once, and prints that directory.
# e2e tests find the binaries through KUBE_BIN_DIR=$(scripts/kube-bins.sh).
set -euo pipefail
K8S=${K8S_VERSION:-1.37.2}
ETCD=${ETCD_VERSION:-3.6.16}
OUT=${KUBE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nodehealthd/kube-v$K8S}
if [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/etcd" ]; then
	echo "$OUT"
	exit 0
fi
mkdir -p "$OUT"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

# kube-apiserver: k8s.io/kubernetes refers to its staging modules through
# replace directives to ./staging, which a tools module must restate as
# versions of the published staging modules.
mkdir -p "$W/kas" && cd "$W/kas"
go mod download -json "k8s.io/kubernetes@v$K8S" >dl.json
MOD=$(sed -n 's/.*"GoMod": "\(.*\)",/\1/p' dl.json)
{
	printf 'module tools/kas\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$K8S"
	grep '=> ./staging' "$MOD" | awk '{print $1}' | grep -v -e sample-cli-plugin -e sample-controller |
		while read -r m; do printf '\t%s => %s v0.%s\n' "$m" "$m" "${K8S#1.}"; done
	printf ')\n'
} >go.mod
printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >tools.go
go mod tidy >&2
MINOR=$(echo "$K8S" | cut -d. -f2)
go build -trimpath -o "$OUT/kube-apiserver.tmp" -ldflags "-s -w \
 -X k8s.io/component-base/version.gitVersion=v$K8S -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/component-base/version.gitTreeState=clean" \
	k8s.io/kubernetes/cmd/kube-apiserver >&2

# etcd: its server module also uses replace directives, so go install fails.
mkdir -p "$W/etcd" && cd "$W/etcd"
printf 'module tools/etcd\n\ngo 1.26.0\n' >go.mod
printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
go get "go.etcd.io/etcd/server/v3@v$ETCD" >&2
go mod tidy >&2
go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
# Rename last so an interrupted build is never mistaken for a cached one.
mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
mv "$OUT/etcd.tmp" "$OUT/etcd"
echo "$OUT"
