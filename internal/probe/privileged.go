package probe

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

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

// Processes lists the host's processes through the helper when there is
// one, else from Root's /proc.
func (e *Env) Processes(ctx context.Context, environ bool) ([]Process, error) {
	if e.Privileged != nil {
		return e.Privileged.Processes(ctx, environ)
	}
	return ScanProcesses(ctx, host.Path(e.Root, "/proc"), environ)
}

// ProcessesLiveHost is Needs.LiveHost of a probe that lists processes: the
// helper reads its own /proc, the running host's, whatever Root is.
func (e *Env) ProcessesLiveHost() string {
	if e.Privileged != nil {
		return "the process table, through the privileged helper"
	}
	return ""
}

// Command runs a command of PrivilegedCommands through the helper when
// there is one, else directly.
func (e *Env) Command(ctx context.Context, name string) ([]byte, error) {
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
	// One buffer for every file: on a node with hundreds of processes the
	// scan runs every few minutes, and each file costs its system calls and
	// an allocation through os.ReadFile.
	buf := make([]byte, 0, 4096)
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
		var st ProcStat
		if buf, err = readInto(buf, dir+"/stat"); err == nil {
			st, err = ParseProcStat(buf)
		}
		if err == nil {
			p.Comm, p.State, p.Starttime, p.BlkioTicks = st.Comm, string(st.State), st.Starttime, st.BlkioTicks
		} else if b, err := os.ReadFile(dir + "/comm"); err == nil {
			p.Comm = strings.TrimSuffix(string(b), "\n")
		} else {
			continue
		}
		if environ {
			if buf, err = readInto(buf, dir+"/environ"); err == nil {
				p.Environ = countEnviron(buf)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// readInto reads the whole file at path into buf, growing it as needed.
// Unlike os.ReadFile it makes no fstat (proc files have no size) and no
// allocation once buf is large enough.
func readInto(buf []byte, path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return buf[:0], &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf[:0], &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// countEnviron counts the non-empty NUL-terminated entries of an environ
// file.
func countEnviron(b []byte) int {
	n := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return n + 1
		}
		if i > 0 {
			n++
		}
		b = b[i+1:]
	}
	return n
}

// DirectNVMeAdmin issues NVMe admin commands from this process, with the
// ioctl that needs CAP_SYS_ADMIN.
func DirectNVMeAdmin() NVMeAdmin { return ioctlNVMeAdmin{} }

// EBSLogPageID and EBSLogPageSize name the only NVMe log page the probes
// read (the EBS statistics page), so that the helper can refuse others.
const (
	EBSLogPageID   = 0xD0
	EBSLogPageSize = 4096
)

// NVMeAdmin issues the two NVMe admin commands the EBS probe needs. The
// ioctl is behind it so that tests feed recorded identify data and log
// pages, and so that the systemd service, which lacks CAP_SYS_ADMIN, can
// have the privileged helper issue them.
type NVMeAdmin interface {
	// IdentifyController returns the 4096-byte Identify Controller data.
	IdentifyController(ctx context.Context, dev string) ([]byte, error)
	// LogPage returns size bytes of log page lid.
	LogPage(ctx context.Context, dev string, lid uint8, size int) ([]byte, error)
}
