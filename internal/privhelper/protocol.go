// Package privhelper splits the privileged reads of the host probes off
// the daemon. The systemd service runs nodehealthd with no capabilities
// and other users' processes hidden; a small helper (the same binary,
// "nodehealthd privileged-helper", socket-activated as
// nodehealthd-helper.service) keeps CAP_SYS_PTRACE, CAP_SYS_ADMIN and
// CAP_NET_ADMIN, has no IP network, parses no logs and answers exactly
// four requests on a root-only Unix socket: the process table (environment
// sizes, never contents), the NVMe Identify Controller data, the EBS
// statistics log page, and the output of iptables-save/ip6tables-save.
//
// The protocol is one JSON request and one JSON response per connection.
package privhelper

import "github.com/nodehealthd/nodehealthd/internal/probe"

// DefaultSocket is where the systemd socket unit listens.
const DefaultSocket = "/run/nodehealthd-helper.sock"

// Request operations.
const (
	OpProcesses = "processes"
	OpIdentify  = "nvme-identify"
	OpLogPage   = "nvme-log-page"
	OpCommand   = "command"
)

// Request is what the daemon asks.
type Request struct {
	Op string `json:"op"`
	// Environ asks for environment sizes (OpProcesses).
	Environ bool `json:"environ,omitempty"`
	// Device is an NVMe namespace, /dev/nvme<N>n<M> (OpIdentify,
	// OpLogPage).
	Device string `json:"device,omitempty"`
	// LogPage and Size select the log page (OpLogPage); only the EBS
	// statistics page is served.
	LogPage uint8 `json:"log_page,omitempty"`
	Size    int   `json:"size,omitempty"`
	// Command is one of probe.PrivilegedCommands (OpCommand).
	Command string `json:"command,omitempty"`
}

// Response is the helper's answer. Error is set when the request failed;
// ErrorKind then says how, so that the client can give the probe the same
// error it would have met in-process.
type Response struct {
	Error     string          `json:"error,omitempty"`
	ErrorKind string          `json:"error_kind,omitempty"`
	Processes []probe.Process `json:"processes,omitempty"`
	Data      []byte          `json:"data,omitempty"`
}

// Error kinds.
const (
	// KindNotFound: the command is not installed on the host.
	KindNotFound = "not-found"
	// KindRefused: the request is not one the helper serves.
	KindRefused = "refused"
)

// maxOutput bounds a command's output (a large kube-proxy ruleset is a few
// MiB) and so the helper's memory for one request.
const maxOutput = 64 << 20
