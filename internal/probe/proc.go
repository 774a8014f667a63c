package probe

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"github.com/nodehealthd/nodehealthd/internal/host"
)

// HostProcFS opens the host's procfs under env.Root.
func HostProcFS(env *Env) (procfs.FS, error) {
	return procfs.NewFS(host.Path(env.Root, "/proc"))
}

// ProcStat is the part of /proc/<pid>/stat the probes use.
type ProcStat struct {
	Comm  string
	State byte
	// Starttime (field 22) tells a process from a later one that reuses
	// its PID.
	Starttime uint64
	// BlkioTicks is delayacct_blkio_ticks (field 42), in clock ticks.
	BlkioTicks uint64
}

// ParseProcStat parses a /proc/<pid>/stat line. procfs's own Proc.Stat is
// not used: it scans every field with fmt.Fscan (slow across all
// processes) and rejects a stat line without the late fields. The command name may hold
// spaces and parentheses (a process can rename itself to "a) b (c"), so it
// runs from the first '(' to the LAST ')'; fields are counted from there.
// Fields the kernel does not provide (old kernels stop before field 42) are
// left zero rather than failing the whole line.
func ParseProcStat(b []byte) (ProcStat, error) {
	var s ProcStat
	l := bytes.IndexByte(b, '(')
	r := bytes.LastIndexByte(b, ')')
	if l < 0 || r < l {
		return s, fmt.Errorf("stat: no command name in %q", truncateForError(b))
	}
	s.Comm = string(b[l+1 : r])
	rest := bytes.Fields(b[r+1:])
	if len(rest) < 1 || len(rest[0]) != 1 {
		return s, fmt.Errorf("stat: no state after the command name in %q", truncateForError(b))
	}
	s.State = rest[0][0]
	// rest[0] is field 3, so field n is rest[n-3].
	var err error
	if len(rest) > 22-3 {
		if s.Starttime, err = strconv.ParseUint(string(rest[22-3]), 10, 64); err != nil {
			return s, fmt.Errorf("stat: starttime: %w", err)
		}
	}
	if len(rest) > 42-3 {
		if s.BlkioTicks, err = strconv.ParseUint(string(rest[42-3]), 10, 64); err != nil {
			return s, fmt.Errorf("stat: delayacct_blkio_ticks: %w", err)
		}
	}
	return s, nil
}

func truncateForError(b []byte) string {
	if len(b) > 120 {
		b = b[:120]
	}
	return string(b)
}

// HostTags returns the tags describing the host at root: the ID of
// /etc/os-release (amzn, bottlerocket, ubuntu…; quotes stripped, as NMA
// reads it) plus extra (eks-auto, hybrid: what the host cannot tell).
func HostTags(root string, extra []string) map[string]bool {
	tags := map[string]bool{}
	for _, t := range extra {
		if t = strings.TrimSpace(t); t != "" {
			tags[t] = true
		}
	}
	b, err := os.ReadFile(host.Path(root, "/etc/os-release"))
	if err != nil {
		return tags
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ID="); ok {
			if id := strings.Trim(v, `"'`); id != "" {
				tags[id] = true
			}
			break
		}
	}
	return tags
}
