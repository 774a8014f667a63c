package probe

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"

	"github.com/nodehealthd/nodehealthd/internal/host"
)

// Privileged does the few reads that need more privilege than the systemd
// service's sandbox grants the daemon (no capabilities, other users'
// processes hidden; docs/systemd.md). The service hands them to
// nodehealthd's privileged helper (internal/privhelper), which holds the
// capabilities, parses no logs and has no IP network. Where the daemon
// runs with full privilege (a terminal, the Bottlerocket host container,
// tests) Env.Privileged is nil and probes do the same reads in-process.
type Privileged interface {
	// Processes lists the host's processes; with environ, each one's
	// environment size too (never its contents).
	Processes(ctx context.Context, environ bool) ([]Process, error)
	// Command runs one of PrivilegedCommands and returns its stdout.
	Command(ctx context.Context, name string) ([]byte, error)
	NVMeAdmin
}

// PrivilegedCommands are the host commands a probe may run through
// Privileged.Command: the helper runs nothing else, and no arguments.
var PrivilegedCommands = []string{"iptables-save", "ip6tables-save"}

// Process is one host process as the process probes see it.
type Process struct {
	PID   int    `json:"pid"`
	Comm  string `json:"comm"`
	State string `json:"state,omitempty"`
	// Starttime (stat field 22) tells a process from a later one that
	// reuses its PID.
	Starttime uint64 `json:"starttime,omitempty"`
	// BlkioTicks is delayacct_blkio_ticks (stat field 42).
	BlkioTicks uint64 `json:"blkio_ticks,omitempty"`
	// Environ is the number of non-empty environment entries, or -1 when
	// not asked for or unreadable (a kernel thread, an exited process).
	Environ int `json:"environ"`
}

// processes lists the host's processes through the helper when there is
// one, else from Root's /proc.
func (e *Env) processes(ctx context.Context, environ bool) ([]Process, error) {
	if e.Privileged != nil {
		return e.Privileged.Processes(ctx, environ)
	}
	return ScanProcesses(ctx, host.Path(e.Root, "/proc"), environ)
}

// processesLiveHost is Needs.LiveHost of a probe that lists processes: the
// helper reads its own /proc, the running host's, whatever Root is.
func (e *Env) processesLiveHost() string {
	if e.Privileged != nil {
		return "the process table, through the privileged helper"
	}
	return ""
}

// command runs a command of PrivilegedCommands through the helper when
// there is one, else directly.
func (e *Env) command(ctx context.Context, name string) ([]byte, error) {
	if e.Privileged != nil {
		return e.Privileged.Command(ctx, name)
	}
	return e.Run(ctx, name)
}

// ScanProcesses reads every process directory of procRoot. A process that
// exits during the scan, or whose stat cannot be read, is left out (or
// keeps only its command name): one process must not fail the scan.
func ScanProcesses(ctx context.Context, procRoot string, environ bool) ([]Process, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	out := make([]Process, 0, len(ents))
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p := Process{PID: pid, Environ: -1}
		dir := procRoot + "/" + ent.Name()
		if st, err := readProcStat(procRoot, pid); err == nil {
			p.Comm, p.State, p.Starttime, p.BlkioTicks = st.Comm, string(st.State), st.Starttime, st.BlkioTicks
		} else if b, err := os.ReadFile(dir + "/comm"); err == nil {
			p.Comm = strings.TrimSuffix(string(b), "\n")
		} else {
			continue
		}
		if environ {
			if b, err := os.ReadFile(dir + "/environ"); err == nil {
				p.Environ = countEnviron(b)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// countEnviron counts the non-empty NUL-terminated entries of an environ
// file.
func countEnviron(b []byte) int {
	n := 0
	for _, v := range bytes.Split(b, []byte{0}) {
		if len(v) > 0 {
			n++
		}
	}
	return n
}

// DirectNVMeAdmin issues NVMe admin commands from this process, with the
// ioctl that needs CAP_SYS_ADMIN.
func DirectNVMeAdmin() NVMeAdmin { return ioctlNVMeAdmin{} }

// EBSLogPageID and EBSLogPageSize name the only NVMe log page the probes
// read (the EBS statistics page), so that the helper can refuse others.
const (
	EBSLogPageID   = ebsLogPageID
	EBSLogPageSize = ebsLogPageSize
)
