package diag

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/redact"
)

// environDaemons are the processes whose environments go into the
// bundle: a proxy or AWS setting the kubelet or containerd runs with
// explains many pull and registration failures.
var environDaemons = []string{"kubelet", "containerd", "nodehealthd"}

// pids lists the processes under root's /proc, in pid order.
func pids(root string) []int {
	ents, err := os.ReadDir(host.Path(root, "/proc"))
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// daemonEnvirons returns plan items for the environments of environDaemons.
func daemonEnvirons(root string) []item {
	var its []item
	for _, pid := range pids(root) {
		comm, err := os.ReadFile(host.Path(root, fmt.Sprintf("/proc/%d/comm", pid)))
		if name := strings.TrimSpace(string(comm)); err == nil && slices.Contains(environDaemons, name) {
			its = append(its, item{out: fmt.Sprintf("system/environ/%s-%d", name, pid), file: fmt.Sprintf("/proc/%d/environ", pid), optional: true})
		}
	}
	return its
}

// cmdlines renders the command line of every process under root, one a
// line, as "PID ARGS". ps shows them too, but only for the host it runs
// on and with argument boundaries lost; these are read under --root and
// redacted argument by argument (a password with a space in it stays one
// argument).
func cmdlines(root string, maxBytes int) ([]byte, redact.Counts, error) {
	var out bytes.Buffer
	var counts redact.Counts
	ps := pids(root)
	if ps == nil {
		return nil, nil, fmt.Errorf("no processes under %s", host.Path(root, "/proc"))
	}
	for _, pid := range ps {
		b, err := os.ReadFile(host.Path(root, fmt.Sprintf("/proc/%d/cmdline", pid)))
		// Kernel threads have none; a process may have exited meanwhile.
		if err != nil || len(b) == 0 {
			continue
		}
		args, c := redact.Args(strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"))
		if len(c) > 0 {
			if counts == nil {
				counts = redact.Counts{}
			}
			counts.Add(c)
		}
		for i, a := range args {
			if a == "" || strings.ContainsAny(a, " \t\n\"'\\") {
				args[i] = strconv.Quote(a)
			}
		}
		fmt.Fprintf(&out, "%d %s\n", pid, strings.Join(args, " "))
		if out.Len() > maxBytes {
			return out.Bytes()[:maxBytes], counts, nil
		}
	}
	return out.Bytes(), counts, nil
}
