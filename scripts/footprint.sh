#!/usr/bin/env bash
# Prints the footprint figures of docs/footprint.md: the stripped size of
# the binaries `make build` makes, and for RUNS daemons left idle side by
# side (default flags, probes on, local mode, metrics on a free loopback
# port), VmRSS split into RssAnon and RssFile after SETTLE seconds, then the
# CPU they use and the times their threads are scheduled (wake-ups) over the
# next WINDOW seconds. Exits 1 when a budget is exceeded.
#
#   RUNS=3 SETTLE=60 WINDOW=300 scripts/footprint.sh
#   NODEHEALTHD=path/to/nodehealthd scripts/footprint.sh   (skip the build)
#
# CPU is the sum of /proc/PID/task/*/schedstat run times (nanoseconds, so
# that a fraction of a millicore is visible); wake-ups are the sum of their
# timeslice counts, per minute of the window. Both move with the load others
# put on the machine: compare binaries side by side, not across runs. A host
# without journal files (a CI machine) does not run the journal reader,
# which every node does.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SETTLE=${SETTLE:-60}
WINDOW=${WINDOW:-300}

. scripts/lib/measure.sh

bin=${NODEHEALTHD:-}
if [ -z "$bin" ]; then
	make -s build BIN="$work/bin" >/dev/null
	bin=$work/bin/nodehealthd
	printf '%-28s %6.2f MiB\n' "nodehealthctl (stripped)" "$(mib "$work/bin/nodehealthctl")"
fi
size_mib=$(mib "$bin")
printf '%-28s %6.2f MiB (budget %s)\n' "nodehealthd (stripped)" "$size_mib" "$MAX_BINARY_MIB"

for i in $(seq "$RUNS"); do
	# The config's directory is watched: keep the log out of it.
	mkdir -p "$work/run$i/etc"
	"$bin" --state-dir "$work/run$i/state" --config "$work/run$i/etc/config.yaml" --metrics-address 127.0.0.1:0 -o none \
		2>"$work/run$i/log" &
	pids+=($!)
done
sleep "$SETTLE"
declare -A ns0 n0
for i in $(seq "$RUNS"); do
	p=${pids[$((i - 1))]}
	read -r ns0[$i] n0[$i] < <(schedstat "$p")
	awk -v run="$i" '/^(VmRSS|RssAnon|RssFile):/ {v[$1] = $2/1024}
		END {printf "run %d idle RSS after '"$SETTLE"' s   %5.1f MiB (anon %4.1f , file %4.1f )\n", run, v["VmRSS:"], v["RssAnon:"], v["RssFile:"]}' \
		"/proc/$p/status" | tee -a "$work/rss"
done
sleep "$WINDOW"
for i in $(seq "$RUNS"); do
	p=${pids[$((i - 1))]}
	read -r ns1 n1 < <(schedstat "$p")
	awk -v run="$i" -v ns="$((ns1 - ns0[$i]))" -v n="$((n1 - n0[$i]))" -v w="$WINDOW" \
		'BEGIN {printf "run %d idle CPU over %d s       %6.3f millicore, %6.1f wake-ups/min\n", run, w, ns/1e6/w, n*60/w}' | tee -a "$work/cpu"
done

# median of column $1 of file $2 (min/median of RUNS values)
minmed() { awk -v c="$1" '{print $c}' "$2" | sort -n | awk '{v[NR] = $1} END {printf "%.3f %.3f\n", v[1], v[int((NR+1)/2)]}'; }
fail=0
over() { awk -v v="$1" -v max="$2" 'BEGIN {exit !(v > max)}'; }
read -r lo med < <(minmed 8 "$work/rss")
read -r alo amed < <(minmed 11 "$work/rss")
read -r flo fmed < <(minmed 14 "$work/rss")
printf 'idle RSS min/median          %5.1f / %5.1f MiB (anon %.1f / %.1f, file %.1f / %.1f; budget %s)\n' "$lo" "$med" "$alo" "$amed" "$flo" "$fmed" "$MAX_RSS_MIB"
over "$med" "$MAX_RSS_MIB" && { echo "FAIL: idle RSS over $MAX_RSS_MIB MiB"; fail=1; }
read -r lo med < <(minmed 8 "$work/cpu")
printf 'idle CPU min/median          %6.3f / %6.3f millicore (budget %s)\n' "$lo" "$med" "$MAX_MILLICORE"
over "$med" "$MAX_MILLICORE" && { echo "FAIL: idle CPU over $MAX_MILLICORE millicore"; fail=1; }
read -r lo med < <(minmed 10 "$work/cpu")
printf 'wake-ups/min min/median      %6.1f / %6.1f\n' "$lo" "$med"
over "$size_mib" "$MAX_BINARY_MIB" && { echo "FAIL: binary over $MAX_BINARY_MIB MiB"; fail=1; }
exit "$fail"
