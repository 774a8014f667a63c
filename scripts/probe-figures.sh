#!/usr/bin/env bash
# Prints the cost figures of the host probes on this machine:
#   - CPU of one full probe pass (every registered probe once, BenchmarkFullPass);
#   - the daemon's steady-state CPU (millicores) and RSS with all probes on,
#     measured twice side by side for RUN_SECONDS (default 180):
#       * at the real periods (5/10/60 min), which in a few minutes shows the
#         idle daemon plus about one pass of the 5- and 10-minute probes;
#       * with every probe period scaled down to SCALED_PERIOD (default 10s),
#         which makes the probe cost measurable; the long-run average at real
#         periods is then idle + (scaled − idle) × SCALED_PERIOD / 5 min, an
#         upper bound since most probes run every 5 min or less often.
# Targets: ≤ 0.3 millicore average and ≤ 15 MiB RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_SECONDS=${RUN_SECONDS:-180}
SCALED_PERIOD=${SCALED_PERIOD:-10s}
WARMUP=${WARMUP:-15}

echo "== one full probe pass (all registered probes, real /proc and /sys)"
go test ./internal/probe/all/ -run '^$' -bench 'BenchmarkFullPass$' -benchtime 300x |
	awk '/^Benchmark/ {for (i = 3; i < NF; i += 2) printf "  %-16s %s\n", $(i+1), $i}'

. scripts/lib/measure.sh
go build -o "$work/nodehealthd" ./cmd/nodehealthd

# Every probe gets a section with the scaled period; each declares its name
# once, in its probe.Kind (internal/probe/<subsystem>/).
{
	echo "probes:"
	grep -ho 'probe.Kind{Name: "[^"]*"' internal/probe/*/*.go | sed 's/.*Name: "//;s/"$//' | sort -u |
		while read -r name; do printf '  %s:\n    period: %s\n' "$name" "$SCALED_PERIOD"; done
} >"$work/scaled.yaml"
: >"$work/real.yaml"

start() { # name config; sets started
	mkdir -p "$work/$1"
	"$work/nodehealthd" --state-dir "$work/$1" --config "$work/$2" --cluster off --metrics-address '' -o none \
		--log-level warn >/dev/null 2>"$work/$1.log" &
	started=$!
	pids+=("$started")
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start real real.yaml
real=$started
start scaled scaled.yaml
scaled=$started
sleep "$WARMUP"
r0=$(cpu_ticks "$real")
s0=$(cpu_ticks "$scaled")
sleep "$RUN_SECONDS"
r1=$(cpu_ticks "$real")
s1=$(cpu_ticks "$scaled")
hz=$(getconf CLK_TCK)

report() { # label pid ticks0 ticks1
	awk -v l="$1" -v t0="$3" -v t1="$4" -v s="$RUN_SECONDS" -v hz="$hz" \
		'BEGIN {printf "  %-34s %7.3f millicores (%.2f s CPU over %d s)\n", l, (t1-t0)/hz/s*1000, (t1-t0)/hz, s}'
	awk -v l="$1" '/^(VmRSS|VmHWM):/ {printf "  %-34s %s %6.1f MiB\n", l, $1, $2/1024}' "/proc/$2/status"
}
echo "== daemon steady state over ${RUN_SECONDS}s (after ${WARMUP}s start-up), all probes on"
report "real periods (5/10/60 min)" "$real" "$r0" "$r1"
report "periods scaled to $SCALED_PERIOD" "$scaled" "$s0" "$s1"
awk -v r0="$r0" -v r1="$r1" -v s0="$s0" -v s1="$s1" -v s="$RUN_SECONDS" -v hz="$hz" -v p="$SCALED_PERIOD" 'BEGIN {
	sub(/s$/, "", p); idle = (r1-r0)/hz/s*1000; scaled = (s1-s0)/hz/s*1000
	probes = scaled - idle; if (probes < 0) probes = 0
	printf "  %-34s %7.3f millicores (probes alone at 5-min periods: %.4f)\n", "estimated long-run average", idle + probes*p/300, probes*p/300
}'
for n in real scaled; do
	if [ -s "$work/$n.log" ]; then
		echo "== $n run: warnings logged"
		sort "$work/$n.log" | sed 's/^time=[^ ]* //' | sort | uniq -c | head -5
	fi
done
