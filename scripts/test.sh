#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need (Debian packages,
# cached kube-apiserver/etcd, pinned Go tools), checks formatting and vet,
# runs every Go test (unit, e2e against real journal files, /dev/kmsg, a real
# kube-apiserver and a real systemd in nspawn), a short fuzzing pass and the
# image linters. CI runs exactly this through .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
KUBE_BIN_DIR=$(scripts/kube-bins.sh)
export KUBE_BIN_DIR

echo "== gofmt"
unformatted=$(git ls-files '*.go' | xargs gofmt -l)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"
	echo "$unformatted"
	exit 1
fi
echo "== go vet"
go vet ./...

echo "== go test -race"
# Every package under the race detector. The daemons the e2e tests start
# are built without it (e2e/internal/testbin): their latency and memory
# are part of what those tests check.
go test -race -count=1 -timeout 60m ./...

echo "== fuzz (short)"
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 15s ./internal/source/kmsg/
go test -run '^$' -fuzz '^FuzzParseAndCompile$' -fuzztime 15s ./internal/rules/
go test -run '^$' -fuzz '^FuzzRedact$' -fuzztime 10s ./internal/redact/

echo "== image templates"
ctl_dir=$(mktemp -d)
trap 'rm -rf "$ctl_dir"' EXIT
go build -o "$ctl_dir/nodehealthctl" ./cmd/nodehealthctl
NODEHEALTHCTL="$ctl_dir/nodehealthctl" scripts/lint-images.sh
echo "== all tests passed"
