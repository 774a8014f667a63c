#!/usr/bin/env bash
# Prints every figure of the performance budget (docs/performance.md) in one
# run, with the budget next to it, and exits non-zero when a figure exceeds
# its budget (BENCH_NO_BUDGET=1 only prints):
#   - the stripped `make build` daemon binary;
#   - the rule engine per line with the full catalogue (realistic mix), and
#     its flatness as rules are added (1000 rules against 10);
#   - two log floods, end to end with the real daemon binary tailing a file
#     under node-problem-detector's 14 kernel-monitor rules (e2e/flood):
#     LINES lines appended at once, 1 in 1000 matching, and LINES/5 lines
#     all matching; CPU per line (utime+stime) and peak RSS (VmHWM);
#   - the idle daemon with default flags and probes on: RSS (anon and
#     file-backed) after IDLE_SECONDS, then CPU in millicores over the next
#     IDLE_SECONDS (per-thread schedstat: tick-based utime would be too
#     coarse for a fraction of a millicore);
#   - end-to-end journal ingest (no budget; its target is ≥ 300k entries/s).
# RUNS=n repeats the measurements and reports min and median (the budget
# applies to the median). LINES (default 1,000,000), ENTRIES (journal
# entries, default 1,000,000) and IDLE_SECONDS (default 60) shrink a run.
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${LINES:-1000000}
ENTRIES=${ENTRIES:-1000000}
IDLE_SECONDS=${IDLE_SECONDS:-60}
RUNS=${RUNS:-1}

. scripts/lib/measure.sh
figures="$work/figures" # lines: key value
: >"$figures"
fig() { echo "$1 $2" >>"$figures"; }

echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"

make build BIN="$work/bin" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
bin="$work/bin/nodehealthd"

for run in $(seq "$RUNS"); do
	echo "== run $run of $RUNS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	fig binary_mib "$(mib "$bin")"

	go test ./internal/rules/ -run '^$' -bench 'CatalogueRealisticMix|RulesScaling' -benchtime 3000000x >"$work/rules.out"
	awk '/^BenchmarkCatalogueRealisticMix/ {print "engine_us", $5}
		/^BenchmarkRulesScaling\/rules=10-/ {r10 = $5}
		/^BenchmarkRulesScaling\/rules=1000-/ {r1000 = $5}
		END {printf "engine_flat %.2f\n", r1000 / r10}' "$work/rules.out" >>"$figures"

	NODEHEALTHD_BIN="$bin" NODEHEALTHD_FLOOD_LINES="$LINES" go test ./e2e/flood/ -run '^$' -bench Flood -benchtime 1x -timeout 30m >"$work/flood.out" ||
		{ cat "$work/flood.out"; exit 1; }
	awk '/^BenchmarkFlood\// {
		name = ($1 ~ /OneInThousand/) ? "flood1000" : "floodall"
		for (i = 3; i < NF; i++) {
			if ($(i+1) == "µs/line") print name "_us", $i
			if ($(i+1) == "peak-MiB") print name "_mib", $i
		}
	}' "$work/flood.out" >>"$figures"

	# Idle: default flags (state and config in the scratch directory).
	rm -rf "$work/state"
	"$bin" --state-dir "$work/state" --config "$work/none.yaml" >/dev/null 2>"$work/idle.log" &
	daemon=$!
	pids=("$daemon")
	sleep "$IDLE_SECONDS"
	awk '/^VmRSS:/ {print "idle_rss_mib", $2/1024} /^RssAnon:/ {print "idle_anon_mib", $2/1024}
		/^RssFile:/ {print "idle_file_mib", $2/1024}' "/proc/$daemon/status" >>"$figures"
	read -r c0 _ < <(schedstat "$daemon")
	t0=$(date +%s.%N)
	sleep "$IDLE_SECONDS"
	read -r c1 _ < <(schedstat "$daemon")
	t1=$(date +%s.%N)
	awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "idle_millicores %.3f\n", (c1-c0)/1e9/(t1-t0)*1000}' >>"$figures"
	kill "$daemon"
	wait "$daemon" 2>/dev/null || true
	pids=()

	NODEHEALTHD_JOURNAL_BENCH_ENTRIES=$ENTRIES go test ./internal/daemon/ -run '^$' -bench JournalIngestEndToEnd -benchtime 1x -timeout 20m >"$work/journal.out"
	awk '/^BenchmarkJournalIngestEndToEnd/ {for (i = 3; i < NF; i++) if ($(i+1) == "entries/s") printf "journal_eps %.0f\n", $i}' "$work/journal.out" >>"$figures"
done

# key, label, unit, budget (empty: none), how the budget applies (max/min)
budgets="binary_mib|stripped daemon binary (make build)|MiB|$MAX_BINARY_MIB|max
engine_us|rule engine, full catalogue, realistic mix|µs/line|0.15|max
engine_flat|rule engine, 1000 rules ÷ 10 rules|×|1.5|max
flood1000_us|flood, 1 line in 1000 matching: CPU per line|µs|0.8|max
flood1000_mib|flood, 1 line in 1000 matching: peak RSS (VmHWM)|MiB|30|max
floodall_us|flood every line matching: CPU per line|µs|5|max
floodall_mib|flood every line matching: peak RSS (VmHWM)|MiB|40|max
idle_rss_mib|idle RSS (VmRSS), default flags, probes on|MiB|$MAX_RSS_MIB|max
idle_anon_mib|  of which anonymous|MiB||
idle_file_mib|  of which file-backed|MiB||
idle_millicores|idle CPU, default flags, probes on|millicores|$MAX_MILLICORE|max
journal_eps|journal ingest end to end (target ≥ 300k)|entries/s||"

echo "== figures ($RUNS run(s): min / median; the budget applies to the median)"
printf '%-48s %12s %12s %10s  %s\n' figure min median budget ""
over=0
while IFS='|' read -r key label unit budget how; do
	vals=$(awk -v k="$key" '$1 == k {print $2}' "$figures" | sort -g)
	[ -n "$vals" ] || continue
	n=$(echo "$vals" | wc -l)
	min=$(echo "$vals" | head -1 | awk '{printf "%.4g", $1}')
	median=$(echo "$vals" | sed -n "$(((n + 1) / 2))p" | awk '{printf "%.4g", $1}')
	verdict=""
	if [ -n "$budget" ]; then
		if awk -v v="$median" -v b="$budget" -v h="$how" 'BEGIN {exit !((h == "max" && v > b) || (h == "min" && v < b))}'; then
			verdict="OVER BUDGET"
			over=1
		else
			verdict="ok"
		fi
		budget="≤ $budget"
	fi
	printf '%-48s %12s %12s %10s  %s\n' "$label ($unit)" "$min" "$median" "$budget" "$verdict"
done <<<"$budgets"

if [ "$over" = 1 ]; then
	echo "some figures exceed their budget (see OVER BUDGET above)"
	[ -n "${BENCH_NO_BUDGET:-}" ] || exit 1
fi
