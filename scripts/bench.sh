#!/usr/bin/env bash
# Prints the performance figures the project tracks:
#   - rule engine cost per line with the full catalogue (target ≤ 0.25 µs/line/core)
#     and its flatness as rules are added;
#   - end-to-end journal ingest from a 1M-entry journal file (target ≥ 300k entries/s);
#   - idle RSS of the daemon on this host (target ≤ 15 MiB).
# ENTRIES=<n> shrinks the journal for a quick run.
set -euo pipefail
cd "$(dirname "$0")/.."
ENTRIES=${ENTRIES:-1000000}

echo "== rule engine (full catalogue, realistic mix; rule scaling)"
go test ./internal/rules/ -run '^$' -bench 'CatalogueRealisticMix|RulesScaling' -benchtime 3000000x |
	awk '/^Benchmark/ {printf "%-45s %s µs/line\n", $1, $5}'

echo "== journal ingest, end to end ($ENTRIES entries)"
NODEHEALTHD_JOURNAL_BENCH_ENTRIES=$ENTRIES go test ./internal/daemon/ -run '^$' -bench JournalIngestEndToEnd -benchtime 1x -timeout 20m |
	awk '/^Benchmark/ {printf "%-45s %.0f entries/s\n", $1, $5}'

echo "== idle RSS"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/nodehealthd" ./cmd/nodehealthd
"$bin/nodehealthd" --state-dir "$bin/state" --config "$bin/none.yaml" -o none 2>/dev/null &
pid=$!
sleep "${IDLE_SECONDS:-20}"
awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%-10s %6.1f MiB\n", $1, $2/1024}' "/proc/$pid/status"
awk '{printf "CPU time   %6.2f s over the idle period (utime+stime, incl. start-up)\n", ($14+$15)/100}' "/proc/$pid/stat"
kill "$pid"
wait "$pid" 2>/dev/null || true
