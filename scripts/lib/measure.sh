# Sourced, from the repository root, by the scripts that measure a running
# daemon (bench.sh, footprint.sh, probe-figures.sh).

# The budgets both bench.sh and footprint.sh check (docs/performance.md);
# the environment may change them for a run.
MAX_BINARY_MIB=${MAX_BINARY_MIB:-20}
MAX_RSS_MIB=${MAX_RSS_MIB:-18}
MAX_MILLICORE=${MAX_MILLICORE:-0.25}

# work is a scratch directory. The daemons whose PIDs a script adds to pids
# are killed, and work removed, when it exits, however it exits.
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# mib prints a file's size in MiB.
mib() { stat -c %s "$1" | awk '{print $1 / 1048576}'; }

# schedstat prints the run time (ns) and the timeslices summed over every
# thread of a PID: nanoseconds, so that a fraction of a millicore shows.
schedstat() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ns += $1; n += $3} END {print ns, n}'; }
