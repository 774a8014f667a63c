//go:build linux

package systemd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/e2e/internal/daemontest"
)

// container is a Debian rootfs booted with systemd as PID 1 under
// systemd-nspawn: a real service manager, journald and dpkg, without a VM.
type container struct {
	t    *testing.T
	root string
	cmd  *exec.Cmd
	done chan struct{}
	// leader is the container's PID 1 as the host sees it.
	leader int
	log    *bytes.Buffer
}

// requireTools skips the test when the host cannot boot a container.
func requireTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("systemd e2e needs root (systemd-nspawn, nsenter, /dev/kmsg)")
	}
	for _, tool := range []string{"systemd-nspawn", "debootstrap", "zstd", "nsenter", "pgrep", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("systemd e2e needs %s: run scripts/install-test-deps.sh", tool)
		}
	}
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skipf("systemd e2e needs /dev/kmsg: %v", err)
	}
}

// bootContainer unpacks the cached rootfs tarball and boots it.
func bootContainer(t *testing.T, tarball string) *container {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if out, err := exec.Command("tar", "-C", root, "--numeric-owner", "-I", "zstd", "-xf", tarball).CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v\n%s", tarball, err, out)
	}
	t.Logf("rootfs unpacked in %v", time.Since(start).Round(time.Millisecond))

	c := &container{t: t, root: root, done: make(chan struct{}), log: &bytes.Buffer{}}
	// --register=no needs --keep-unit: there is no host systemd to ask
	// for a scope. The host's kmsg ring is bound in. What the unit grants
	// must exist in the container for the unit to pass it on: CAP_SYSLOG
	// (systemd opening kmsg for the daemon under dmesg_restrict) and
	// CAP_NET_ADMIN (the helper's iptables-save) are not in nspawn's
	// default capability set, and nspawn blocks adjtimex (even the
	// read-only call timedated makes to answer the clock-sync probe)
	// without CAP_SYS_TIME, which the container does not get.
	c.cmd = exec.Command("systemd-nspawn", "-D", root, "--boot", "--register=no", "--keep-unit",
		"--console=pipe", "-M", fmt.Sprintf("nhd-e2e-%d", os.Getpid()), "--bind=/dev/kmsg",
		"--capability=CAP_SYSLOG,CAP_NET_ADMIN", "--system-call-filter=adjtimex")
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(c.shutdown)

	deadline := time.Now().Add(60 * time.Second)
	for {
		if c.leader == 0 {
			out, _ := exec.Command("pgrep", "-P", strconv.Itoa(c.cmd.Process.Pid)).Output()
			if f := strings.Fields(string(out)); len(f) > 0 {
				c.leader, _ = strconv.Atoi(f[0])
			}
		}
		if c.leader != 0 {
			out, _ := c.exec("systemctl", "is-system-running")
			if s := strings.TrimSpace(out); s == "running" || s == "degraded" {
				t.Logf("container booted (%s) in %v", s, time.Since(start).Round(time.Millisecond))
				return c
			}
		}
		select {
		case <-c.done:
			t.Fatalf("systemd-nspawn exited during boot:\n%s", c.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("container did not boot within 60s:\n%s", c.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exec runs a command in all of the container's namespaces.
func (c *container) exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(c.leader), "-a", "--"}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
		"SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "TERM=dumb"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sh runs a shell script in the container and fails the test on error.
func (c *container) sh(script string) string {
	c.t.Helper()
	out, err := c.exec("/bin/sh", "-ec", script)
	if err != nil {
		c.t.Fatalf("in container: %s\n%v\n%s", script, err, out)
	}
	return out
}

// try runs a shell script and returns its output and exit status.
func (c *container) try(script string) (string, int) {
	out, err := c.exec("/bin/sh", "-c", script)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	c.t.Fatalf("cannot run %q: %v", script, err)
	return "", -1
}

// systemctl returns what `systemctl query` prints, trimmed: for the is-*
// queries the answer says all that the exit status says.
func (c *container) systemctl(query string) string {
	out, _ := c.try("systemctl " + query)
	return strings.TrimSpace(out)
}

// copyIn puts a host file into the container's /var/tmp (its /tmp is a
// fresh tmpfs that hides files written to the rootfs).
func (c *container) copyIn(src string) string {
	c.t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		c.t.Fatal(err)
	}
	dst := filepath.Join("/var/tmp", filepath.Base(src))
	if err := os.WriteFile(filepath.Join(c.root, dst), b, 0o644); err != nil {
		c.t.Fatal(err)
	}
	return dst
}

// writeFile writes a file into the container's file system.
func (c *container) writeFile(path, content string) {
	c.t.Helper()
	daemontest.Write(c.t, filepath.Join(c.root, path), content)
}

// eventually polls check until it returns "" (done) or the timeout passes,
// then fails with check's last complaint.
func (c *container) eventually(timeout time.Duration, what string, check func() string) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not within %v: %s", what, timeout, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *container) shutdown() {
	select {
	case <-c.done:
		return
	default:
	}
	if c.leader != 0 {
		c.exec("systemctl", "--no-block", "poweroff")
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}
