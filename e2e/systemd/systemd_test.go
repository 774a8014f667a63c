//go:build linux

// Package systemd tests the packaged daemon under a real systemd: a Debian
// rootfs booted with systemd-nspawn, the .deb installed with dpkg and the
// .rpm with rpm, findings provoked through the host's real /dev/kmsg and
// the container's real journal, and the watchdog made to fire.
//
// It needs root, systemd-nspawn, debootstrap and zstd
// (scripts/install-test-deps.sh) and skips otherwise. The rootfs is built
// once by scripts/rootfs.sh and cached outside the repository. Packages
// come from NODEHEALTHD_E2E_DIST (make e2e) or are built with make.
package systemd

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/publish/journald"
)

// maxExposure bounds `systemd-analyze security nodehealthd.service`: the
// issue's target. helperMaxExposure bounds the privileged helper's unit,
// which holds the capabilities the daemon gave up (docs/systemd.md).
// Loosening either unit must fail here.
const (
	maxExposure       = 2.0
	helperMaxExposure = 2.3
)

const (
	baseVersion    = "0.1.0"
	upgradeVersion = "0.1.0.1"
	release        = "1"
)

type packages struct {
	deb, debUpgrade, rpm    string
	version, upgradeVersion string
}

func repoRoot(t *testing.T) string {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// buildPackages returns the packages under test: those of make e2e, or
// built here (binaries once; the second package only relinks).
func buildPackages(t *testing.T) packages {
	if dist := os.Getenv("NODEHEALTHD_E2E_DIST"); dist != "" {
		v, uv := os.Getenv("NODEHEALTHD_E2E_VERSION"), os.Getenv("NODEHEALTHD_E2E_UPGRADE_VERSION")
		p := packages{
			deb:        filepath.Join(dist, "nodehealthd_"+v+"_amd64.deb"),
			debUpgrade: filepath.Join(dist, "nodehealthd_"+uv+"_amd64.deb"),
			rpm:        filepath.Join(dist, "nodehealthd-"+v+".x86_64.rpm"),
			version:    v, upgradeVersion: uv,
		}
		for _, f := range []string{p.deb, p.debUpgrade, p.rpm} {
			if _, err := os.Stat(f); err != nil {
				t.Fatalf("NODEHEALTHD_E2E_DIST: %v", err)
			}
		}
		return p
	}
	if a := archOf(t); a != "amd64" {
		t.Skipf("package names assume amd64, this is %s", a)
	}
	out := t.TempDir()
	start := time.Now()
	for _, v := range []string{baseVersion, upgradeVersion} {
		cmd := exec.Command("make", "-C", repoRoot(t), "packages", "VERSION="+v, "RELEASE="+release,
			"BIN="+filepath.Join(out, "bin"), "DIST="+filepath.Join(out, "dist"))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make packages VERSION=%s: %v\n%s", v, err, b)
		}
	}
	t.Logf("packages built in %v", time.Since(start).Round(time.Second))
	dist := filepath.Join(out, "dist")
	return packages{
		deb:        filepath.Join(dist, "nodehealthd_"+baseVersion+"-"+release+"_amd64.deb"),
		debUpgrade: filepath.Join(dist, "nodehealthd_"+upgradeVersion+"-"+release+"_amd64.deb"),
		rpm:        filepath.Join(dist, "nodehealthd-"+baseVersion+"-"+release+".x86_64.rpm"),
		version:    baseVersion + "-" + release, upgradeVersion: upgradeVersion + "-" + release,
	}
}

func archOf(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func cachedRootfs(t *testing.T) string {
	start := time.Now()
	out, err := exec.Command(filepath.Join(repoRoot(t), "scripts", "rootfs.sh")).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("scripts/rootfs.sh: %v\n%s", err, stderr)
	}
	t.Logf("rootfs ready in %v", time.Since(start).Round(time.Millisecond))
	return strings.TrimSpace(string(out))
}

// statusView is the part of `nodehealthctl status -o json` checked here.
type statusView struct {
	Conditions []struct {
		Type, Status, Reason string
	} `json:"conditions"`
	Active         []findingView `json:"active"`
	RecentWarnings []findingView `json:"recentWarnings"`
}

type findingView struct {
	ID        uint64    `json:"id"`
	Condition string    `json:"condition"`
	Reason    string    `json:"reason"`
	Severity  string    `json:"severity"`
	Message   string    `json:"message"`
	Detected  time.Time `json:"detected"`
}

func (c *container) status() statusView {
	c.t.Helper()
	out := c.sh("nodehealthctl status -o json")
	var v statusView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		c.t.Fatalf("nodehealthctl status -o json: %v\n%s", err, out)
	}
	return v
}

func find(fs []findingView, reason, msgPart string) *findingView {
	for i := range fs {
		if fs[i].Reason == reason && strings.Contains(fs[i].Message, msgPart) {
			return &fs[i]
		}
	}
	return nil
}

func (c *container) statusText() string {
	return strings.TrimPrefix(strings.TrimSpace(c.sh("systemctl show -p StatusText nodehealthd")), "StatusText=")
}

func (c *container) mainPID() int {
	pid, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(c.sh("systemctl show -p MainPID nodehealthd")), "MainPID="))
	return pid
}

// waitActive waits until systemd reports nodehealthd active.
func (c *container) waitActive(timeout time.Duration, what string) {
	c.t.Helper()
	c.eventually(timeout, what, func() string {
		if s := c.systemctl("is-active nodehealthd"); s != "active" {
			return "is-active " + s
		}
		return ""
	})
}

// installed checks that installing the package (by how) enabled the
// service and started it.
func (c *container) installed(how string) {
	c.t.Helper()
	if s := c.systemctl("is-enabled nodehealthd"); s != "enabled" {
		c.t.Errorf("after %s: is-enabled %q", how, s)
	}
	c.waitActive(30*time.Second, how+" starts the service")
}

// removed checks that removing the package (by how) stopped the service
// and disabled it.
func (c *container) removed(how string) {
	c.t.Helper()
	if c.systemctl("is-active nodehealthd") == "active" {
		c.t.Errorf("still active after %s", how)
	}
	if c.systemctl("is-enabled nodehealthd") == "enabled" {
		c.t.Errorf("still enabled after %s", how)
	}
}

// reloads counts the rule reloads the daemon logged, as text.
func (c *container) reloads() string {
	out, _ := c.try("journalctl -u nodehealthd --no-pager | grep -c 'rules reloaded'")
	return strings.TrimSpace(out)
}

// journalEntries returns the nodehealthd journal entries matching a field.
func (c *container) journalEntries(match string) []map[string]any {
	c.t.Helper()
	out := c.sh("journalctl -u nodehealthd -o json --no-pager " + match)
	var entries []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" || !strings.HasPrefix(line, "{") {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			c.t.Fatalf("journal entry %q: %v", line, err)
		}
		entries = append(entries, e)
	}
	return entries
}

func token() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// TestPackagedServiceUnderSystemd is one container's life: install,
// detection, upgrade, watchdog, hardening, removal, purge, then the RPM's
// scriptlets. The steps share the container because each builds on the
// state the previous one left, as on a real node.
func TestPackagedServiceUnderSystemd(t *testing.T) {
	requireTools(t)
	pkgs := buildPackages(t)
	c := bootContainer(t, cachedRootfs(t))
	deb, debUp, rpm := c.copyIn(pkgs.deb), c.copyIn(pkgs.debUpgrade), c.copyIn(pkgs.rpm)
	// Durations of the soft lockups this run writes; the host's kmsg ring
	// is shared with every earlier run and the host itself.
	tok := token()
	lockupSecs := 10000 + tok%80000

	t.Run("packages lint clean", func(t *testing.T) {
		for _, tool := range []string{"lintian", "rpmlint"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s missing: run scripts/install-test-deps.sh", tool)
			}
		}
		for _, cmd := range [][]string{
			{"lintian", "--fail-on", "error,warning", pkgs.deb},
			{"rpmlint", "-r", filepath.Join(repoRoot(t), "packaging", "rpm", "rpmlintrc"), pkgs.rpm},
		} {
			out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
			t.Logf("%s: %s", cmd[0], strings.TrimSpace(string(out)))
			if err != nil {
				t.Errorf("%s: %v", cmd[0], err)
			}
		}
	})

	t.Run("install enables and starts", func(t *testing.T) {
		c.t = t
		c.sh("dpkg -i " + deb)
		c.installed("dpkg -i")
		c.eventually(30*time.Second, "a status line", func() string {
			if st := c.statusText(); !strings.HasSuffix(st, "cluster: local") {
				return "status line " + st
			}
			return ""
		})
		// The units as installed, as the AMI bake's validation checks them.
		if out, rc := c.try("systemd-analyze verify --man=no nodehealthd.service nodehealthd-helper.socket nodehealthd-helper.service 2>&1"); rc != 0 {
			t.Errorf("systemd-analyze verify: exit %d\n%s", rc, out)
		}
		st := c.sh("systemctl status nodehealthd --no-pager --lines=0")
		t.Logf("systemctl status:\n%s", st)
		// The host's kmsg ring is shared and read from its start, so a
		// record some other test left there may already count.
		if !regexp.MustCompile(`Status: "(\d/\d conditions healthy|\w+=False \(.*\)) · .*cluster: local"`).MatchString(st) {
			t.Errorf("systemctl status lacks the health line")
		}
		if v := strings.TrimSpace(c.sh("nodehealthd -version")); v != "nodehealthd "+strings.TrimSuffix(pkgs.version, "-"+release) {
			t.Errorf("installed binary: %q", v)
		}
		// ExecReload sends SIGHUP: rules reload in place, no restart.
		pid := c.mainPID()
		c.sh("systemctl reload nodehealthd")
		c.eventually(10*time.Second, "reload logged", func() string {
			if out, _ := c.try("journalctl -u nodehealthd --no-pager | grep -c 'SIGHUP: reloading'"); strings.TrimSpace(out) == "0" {
				return "no SIGHUP reload in the journal"
			}
			return ""
		})
		if p := c.mainPID(); p != pid {
			t.Errorf("reload restarted the daemon: MainPID %d -> %d", pid, p)
		}
		// Under systemd, findings go to the journal as entries, not to
		// stdout as text lines as well.
		if out := c.sh("journalctl -u nodehealthd -o json --no-pager _TRANSPORT=stdout"); strings.Contains(out, "KernelReady=True") {
			t.Errorf("console output under systemd:\n%s", out)
		}
		// The daemon's own logs are native journal entries.
		if len(c.journalEntries("_TRANSPORT=journal SYSLOG_IDENTIFIER=nodehealthd")) == 0 {
			t.Errorf("no native journal entries from the daemon")
		}
		// The kernel log comes from the /dev/kmsg systemd opened: the
		// sandbox (ProtectKernelLogs, no CAP_SYSLOG) hides the device.
		if out, _ := c.try("journalctl -u nodehealthd --no-pager -o cat | grep -c 'reading the kernel log from the device systemd opened'"); strings.TrimSpace(out) == "0" {
			t.Errorf("the daemon did not take /dev/kmsg from systemd")
		}
	})

	t.Run("hardening exposure", func(t *testing.T) {
		c.t = t
		for _, u := range []struct {
			unit   string
			budget float64
		}{{"nodehealthd.service", maxExposure}, {"nodehealthd-helper.service", helperMaxExposure}} {
			out := c.sh("systemd-analyze security " + u.unit + " --no-pager")
			var relaxed []string
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "✗") {
					relaxed = append(relaxed, l)
				}
			}
			t.Logf("%s relaxations:\n%s", u.unit, strings.Join(relaxed, "\n"))
			m := regexp.MustCompile(`Overall exposure level for ` + regexp.QuoteMeta(u.unit) + `: (\d+\.\d)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no exposure in:\n%s", out)
			}
			exposure, _ := strconv.ParseFloat(m[1], 64)
			t.Logf("systemd-analyze security %s: exposure %.1f (budget %.1f)", u.unit, exposure, u.budget)
			if exposure > u.budget {
				t.Errorf("%s: exposure %.1f above %.1f", u.unit, exposure, u.budget)
			}
		}
	})

	t.Run("probes work inside the sandbox", func(t *testing.T) {
		c.t = t
		// A process of another user with a large environment: only the
		// privileged helper (CAP_SYS_PTRACE) can see it and count its
		// environment; the daemon's own sandbox hides it.
		c.sh(`systemd-run --unit=nhd-e2e-bigenv -p User=nobody /usr/bin/env $(for i in $(seq 60); do printf 'E2E_VAR_%d=x ' $i; done) sleep 600`)
		defer c.try("systemctl stop nhd-e2e-bigenv")
		bigPID := ""
		c.eventually(10*time.Second, "big-environment process running", func() string {
			out, _ := c.try("systemctl show -P MainPID nhd-e2e-bigenv")
			if bigPID = strings.TrimSpace(out); bigPID == "" || bigPID == "0" {
				return "no MainPID: " + out
			}
			return ""
		})
		c.writeFile("/etc/nodehealthd/e2e-once.yaml", "probes:\n  large-environment:\n    threshold: 50\n")
		// The installed unit's sandbox, running every probe once through
		// the helper: a probe the hardening starves fails with
		// EPERM/EACCES.
		unit := c.sh("cat /lib/systemd/system/nodehealthd.service")
		c.writeFile("/etc/systemd/system/nhd-e2e-once.service", unit+`
[Service]
Type=oneshot
ExecStart=
ExecStart=/usr/bin/nodehealthd -once -o json -config /etc/nodehealthd/e2e-once.yaml -privileged-helper=/run/nodehealthd-helper.sock
# -once exits 1 when any probe failed; this test judges the probes by name
# below, since some have nothing to read in a container.
SuccessExitStatus=1
ExecReload=
WatchdogSec=0
Restart=no
`)
		c.sh("systemctl daemon-reload && systemctl start nhd-e2e-once.service")
		out := c.sh("journalctl -u nhd-e2e-once.service -o cat --no-pager")
		t.Logf("nodehealthd -once in the unit's sandbox:\n%s", out)
		for _, l := range strings.Split(out, "\n") {
			low := strings.ToLower(l)
			if strings.Contains(low, "permission denied") || strings.Contains(low, "operation not permitted") {
				t.Errorf("starved by the sandbox: %s", l)
			}
			// The probes that need the helper or D-Bus must not fail.
			for _, p := range []string{"large-environment", "zombies", "io-delays", "iptables", "clock-sync"} {
				if strings.Contains(l, "probe failed") && strings.Contains(l, "probe="+p+" ") ||
					strings.Contains(l, `"event":"probe","probe":"`+p+`","status":"failed"`) {
					t.Errorf("probe %s failed in the sandbox: %s", p, l)
				}
			}
		}
		if want := `"key":"` + bigPID + `/sleep"`; !strings.Contains(out, `"reason":"LargeEnvironment"`) || !strings.Contains(out, want) {
			t.Errorf("no LargeEnvironment finding with %s: the helper did not see another user's process", want)
		}
		t.Logf("privileged helper:\n%s", c.sh("systemctl status nodehealthd-helper.service --no-pager --lines=5"))
		c.sh("rm /etc/systemd/system/nhd-e2e-once.service /etc/nodehealthd/e2e-once.yaml && systemctl daemon-reload")
	})

	t.Run("runs without kubelet and containerd", func(t *testing.T) {
		c.t = t
		c.writeFile("/etc/systemd/system/kubelet.service", "[Unit]\nDescription=e2e stand-in for a broken kubelet\n[Service]\nExecStart=/bin/false\n")
		c.sh("systemctl daemon-reload")
		c.try("systemctl start kubelet")
		c.eventually(10*time.Second, "kubelet failed", func() string {
			if s := c.systemctl("is-failed kubelet"); s != "failed" {
				return "kubelet: " + s
			}
			return ""
		})
		if _, rc := c.try("systemctl cat containerd.service"); rc == 0 {
			t.Fatal("containerd.service exists in the test rootfs")
		}
		c.sh("systemctl restart nodehealthd")
		if s := c.systemctl("is-active nodehealthd"); s != "active" {
			t.Fatalf("nodehealthd with kubelet failed and containerd absent: %s\n%s", s, c.sh("journalctl -u nodehealthd --no-pager -n 30"))
		}
	})

	var fork findingView
	t.Run("kmsg and journal findings", func(t *testing.T) {
		c.t = t
		// An operator rule that would match the daemon's own finding
		// entries, were the journal source to read them.
		reloadsBefore := c.reloads()
		c.writeFile("/etc/nodehealthd/rules.d/e2e-self.yaml", `rules:
  - name: E2ESelfIngested
    condition: KernelReady
    reason: E2ESelfIngested
    severity: Warning
    source: journal
    units: [nodehealthd.service]
    identifiers: [nodehealthd]
    patterns: ['SoftLockup|ForkFailedOutOfPIDs|CPU stuck']
`)
		c.eventually(15*time.Second, "operator rule loaded", func() string {
			if n := c.reloads(); n == reloadsBefore {
				return "no reload logged after the rule was written: " + c.sh("journalctl -u nodehealthd --no-pager -n 5")
			}
			return ""
		})
		before := c.statusText()

		// The host's /dev/kmsg is the container's: same ring.
		rec := fmt.Sprintf("<4>watchdog: BUG: soft lockup - CPU#1 stuck for %ds! [e2e-%08x:1]\n", lockupSecs, tok)
		if err := os.WriteFile("/dev/kmsg", []byte(rec), 0); err != nil {
			t.Fatal(err)
		}
		c.sh(fmt.Sprintf("logger -t kubelet 'E1125 pod_workers.go:1301] Error syncing pod: fork/exec /usr/bin/e2e-%08x: resource temporarily unavailable'", tok))

		wantLockup := fmt.Sprintf("CPU stuck for %ds", lockupSecs)
		c.eventually(30*time.Second, "findings in the journal", func() string {
			lock := c.journalEntries("NODEHEALTH_REASON=SoftLockup NODEHEALTH_EVENT=finding")
			found := false
			for _, e := range lock {
				if strings.Contains(fmt.Sprint(e["MESSAGE"]), wantLockup) {
					found = true
					for k, v := range map[string]string{"NODEHEALTH_SEVERITY": "Warning", "NODEHEALTH_CONDITION": "KernelReady",
						"NODEHEALTH_SOURCE": "kmsg", "PRIORITY": "4", "SYSLOG_IDENTIFIER": "nodehealthd",
						"MESSAGE_ID": journald.MessageID("finding", "SoftLockup")} {
						if e[k] != v {
							t.Errorf("SoftLockup entry %s=%v, want %s", k, e[k], v)
						}
					}
				}
			}
			if !found {
				return fmt.Sprintf("no SoftLockup entry with %q among %d", wantLockup, len(lock))
			}
			forks := c.journalEntries("NODEHEALTH_REASON=ForkFailedOutOfPIDs NODEHEALTH_EVENT=finding")
			if len(forks) != 1 {
				return fmt.Sprintf("%d ForkFailedOutOfPIDs finding entries", len(forks))
			}
			for k, v := range map[string]string{"NODEHEALTH_SEVERITY": "Fatal", "NODEHEALTH_CONDITION": "KernelReady",
				"NODEHEALTH_SOURCE": "journal", "PRIORITY": "3", "MESSAGE_ID": journald.MessageID("finding", "ForkFailedOutOfPIDs")} {
				if forks[0][k] != v {
					t.Errorf("ForkFailedOutOfPIDs entry %s=%v, want %s", k, forks[0][k], v)
				}
			}
			return ""
		})
		t.Logf("journalctl -u nodehealthd NODEHEALTH_CONDITION=KernelReady:\n%s",
			c.sh("journalctl -u nodehealthd --no-pager NODEHEALTH_CONDITION=KernelReady"))

		v := c.status()
		if w := find(v.RecentWarnings, "SoftLockup", wantLockup); w == nil {
			t.Errorf("nodehealthctl status: no SoftLockup %q warning: %+v", wantLockup, v.RecentWarnings)
		}
		f := find(v.Active, "ForkFailedOutOfPIDs", "")
		if f == nil {
			t.Fatalf("nodehealthctl status: ForkFailedOutOfPIDs not active: %+v", v.Active)
		}
		fork = *f
		t.Logf("nodehealthctl status:\n%s", c.sh("nodehealthctl status"))

		c.eventually(10*time.Second, "status line follows health", func() string {
			st := c.statusText()
			// The reason shown is the oldest active finding's: another
			// test's record in the shared kmsg ring may be older.
			if st == before || !regexp.MustCompile(`KernelReady=False \(\w+ since \d\d:\d\d\).* · \d+ warnings? in 1h · cluster: local$`).MatchString(st) {
				return fmt.Sprintf("status line %q (before: %q)", st, before)
			}
			return ""
		})
		t.Logf("status line: %q -> %q", before, c.statusText())

		// Give a self-ingestion loop time to show, then check for it.
		time.Sleep(2 * time.Second)
		if e := c.journalEntries("NODEHEALTH_REASON=E2ESelfIngested"); len(e) > 0 {
			t.Errorf("the daemon read its own journal entries back: %v", e[0]["MESSAGE"])
		}
	})
	if fork.ID == 0 {
		t.FailNow()
	}

	t.Run("upgrade keeps state", func(t *testing.T) {
		c.t = t
		c.sh("echo '# e2e: operator edit' >> /etc/nodehealthd/config.yaml")
		pid := c.mainPID()
		c.sh("dpkg -i " + debUp)
		if v := strings.TrimSpace(c.sh("dpkg-query -W -f '${Version}' nodehealthd")); v != pkgs.upgradeVersion {
			t.Errorf("installed version %q, want %q", v, pkgs.upgradeVersion)
		}
		c.eventually(20*time.Second, "restarted on the new binary", func() string {
			if s := c.systemctl("is-active nodehealthd"); s != "active" {
				return "is-active " + s
			}
			if p := c.mainPID(); p == pid || p == 0 {
				return fmt.Sprintf("MainPID %d (before %d)", p, pid)
			}
			return ""
		})
		if !strings.Contains(c.sh("cat /etc/nodehealthd/config.yaml"), "# e2e: operator edit") {
			t.Errorf("upgrade replaced the edited config.yaml")
		}
		if s := c.systemctl("is-enabled nodehealthd"); s != "enabled" {
			t.Errorf("after upgrade is-enabled: %q", s)
		}
		f := find(c.status().Active, "ForkFailedOutOfPIDs", "")
		if f == nil || f.ID != fork.ID || !f.Detected.Equal(fork.Detected) {
			t.Errorf("active finding after upgrade %+v, want %+v", f, fork)
		}
		c.eventually(10*time.Second, "status line after upgrade", func() string {
			if st := c.statusText(); !strings.Contains(st, "KernelReady=False (") {
				return st
			}
			return ""
		})
	})

	t.Run("watchdog restarts a frozen daemon", func(t *testing.T) {
		c.t = t
		c.writeFile("/etc/systemd/system/nodehealthd.service.d/e2e-watchdog.conf", "[Service]\nWatchdogSec=3s\nRestartSec=1s\n")
		c.sh("systemctl daemon-reload && systemctl restart nodehealthd")
		c.waitActive(15*time.Second, "active")
		// A healthy daemon outlives several watchdog intervals.
		pid := c.mainPID()
		time.Sleep(7 * time.Second)
		if p := c.mainPID(); p != pid {
			t.Fatalf("restarted while healthy: MainPID %d -> %d\n%s", pid, p, c.sh("journalctl -u nodehealthd --no-pager -n 20"))
		}
		restarts := c.sh("systemctl show -p NRestarts nodehealthd")
		frozen := time.Now()
		c.sh(fmt.Sprintf("kill -STOP %d", pid))
		c.eventually(30*time.Second, "restart by the watchdog", func() string {
			p := c.mainPID()
			if p == pid || p == 0 {
				return fmt.Sprintf("MainPID %d", p)
			}
			if s := c.systemctl("is-active nodehealthd"); s != "active" {
				return "is-active " + s
			}
			return ""
		})
		t.Logf("frozen daemon replaced after %v (%s -> %s)", time.Since(frozen).Round(100*time.Millisecond),
			strings.TrimSpace(restarts), strings.TrimSpace(c.sh("systemctl show -p NRestarts nodehealthd")))
		if out, _ := c.try("journalctl -u nodehealthd --no-pager | grep -c 'Watchdog timeout'"); strings.TrimSpace(out) == "0" {
			t.Errorf("no watchdog timeout in the journal")
		}
		f := find(c.status().Active, "ForkFailedOutOfPIDs", "")
		if f == nil || f.ID != fork.ID {
			t.Errorf("active finding after the watchdog restart %+v, want ID %d", f, fork.ID)
		}
		c.eventually(10*time.Second, "status line after the restart", func() string {
			if st := c.statusText(); !strings.Contains(st, "KernelReady=False (") {
				return st
			}
			return ""
		})
		c.sh("rm /etc/systemd/system/nodehealthd.service.d/e2e-watchdog.conf && systemctl daemon-reload")
	})

	// journald reads its socket in the loop that writes to disk: on a hung
	// disk it stops reading, and a send to it blocks. A stopped journald
	// stands in for it here; the daemon must go on detecting (status shows
	// each new finding) and tell the entries it dropped once journald reads
	// again. The old daemon sent from the pipeline and stalled.
	t.Run("a stopped journald stops nothing", func(t *testing.T) {
		c.t = t
		reloadsBefore := c.reloads()
		c.sh("touch /var/log/e2e-stall.log")
		c.writeFile("/etc/nodehealthd/rules.d/e2e-stall.yaml", `rules:
  - name: E2EStall
    condition: KernelReady
    reason: E2EStall
    severity: Warning
    source: file
    paths: [/var/log/e2e-stall.log]
    patterns: ['E2E-STALL \d+']
`)
		c.eventually(15*time.Second, "stall rule loaded", func() string {
			if c.reloads() == reloadsBefore {
				return "no reload logged"
			}
			return ""
		})
		pid := c.mainPID()
		journald := strings.TrimSpace(c.sh("systemctl show -p MainPID --value systemd-journald"))
		c.sh("kill -STOP " + journald)
		stopped := true
		defer func() {
			if stopped {
				c.try("kill -CONT " + journald)
			}
		}()
		// Each line a finding of its own, and with it a journal entry:
		// more than journald's socket and the daemon's queue hold.
		const lines = 3000
		c.sh(fmt.Sprintf("seq 1 %d | sed 's/^/E2E-STALL /' >> /var/log/e2e-stall.log", lines))
		last := fmt.Sprintf("E2E-STALL %d", lines)
		c.eventually(60*time.Second, "detection while journald is stopped", func() string {
			if find(c.status().RecentWarnings, "E2EStall", last) == nil {
				return "no finding for " + last
			}
			return ""
		})
		if p := c.mainPID(); p != pid {
			t.Errorf("the daemon was restarted while journald was stopped: MainPID %d -> %d", pid, p)
		}
		c.sh("kill -CONT " + journald)
		stopped = false
		c.eventually(30*time.Second, "the drop notice once journald reads again", func() string {
			out, _ := c.try("journalctl -u nodehealthd --no-pager -o cat | grep -c 'journal entries of nodehealthd were dropped'")
			if strings.TrimSpace(out) == "0" {
				return "no drop notice in the journal"
			}
			return ""
		})
		t.Logf("after journald resumed: %s", strings.TrimSpace(c.sh("journalctl -u nodehealthd --no-pager -o cat | grep 'were dropped' | tail -3")))
		c.sh("rm /etc/nodehealthd/rules.d/e2e-stall.yaml /var/log/e2e-stall.log")
	})

	// docs/plugins.md's drop-in is what lets the capability-less unit run
	// NPD plugins as nobody: without it the switch is refused (an unknown
	// run, the condition untouched); with it the plugin's exit 1 makes the
	// custom condition False with its output.
	t.Run("NPD plugin as nobody with the documented drop-in", func(t *testing.T) {
		c.t = t
		c.writeFile("/etc/nodehealthd/plugins/check_foo.sh", "#!/bin/sh\necho \"foo is missing (uid $(id -u))\"\nexit 1\n")
		c.sh("chmod 755 /etc/nodehealthd/plugins/check_foo.sh")
		c.writeFile("/etc/nodehealthd/plugins/foo.json", `{"plugin": "custom",
  "pluginConfig": {"invoke_interval": "1s", "timeout": "2s", "max_output_length": 80, "concurrency": 1},
  "source": "foo-monitor",
  "conditions": [{"type": "FooReady", "reason": "FooFine", "message": "foo is fine"}],
  "rules": [{"type": "permanent", "condition": "FooReady", "reason": "FooMissing", "path": "/etc/nodehealthd/plugins/check_foo.sh"}]}
`)
		c.sh("cp -p /etc/nodehealthd/config.yaml /root/config.yaml.orig")
		c.writeFile("/etc/nodehealthd/config.yaml", "conditions:\n  FooReady: {healthyReason: FooFine, healthyMessage: foo is fine}\nplugins: [/etc/nodehealthd/plugins/foo.json]\n")
		c.writeFile("/etc/systemd/system/nodehealthd.service.d/plugins.conf", "[Service]\nCapabilityBoundingSet=CAP_SETUID CAP_SETGID\nSystemCallFilter=@setuid\n")
		c.sh("systemctl daemon-reload && systemctl restart nodehealthd")
		c.eventually(30*time.Second, "FooMissing active with the plugin's output, run as nobody", func() string {
			st := c.status()
			if f := find(st.Active, "FooMissing", "foo is missing (uid 65534)"); f == nil || f.Condition != "FooReady" {
				return fmt.Sprintf("active %+v\n%s", st.Active, c.sh("journalctl -u nodehealthd --no-pager -n 20 | grep -i plugin || true"))
			}
			return ""
		})
		c.sh("rm -r /etc/systemd/system/nodehealthd.service.d/plugins.conf /etc/nodehealthd/plugins && mv /root/config.yaml.orig /etc/nodehealthd/config.yaml && systemctl daemon-reload && systemctl restart nodehealthd")
	})

	t.Run("remove stops and disables, purge removes state", func(t *testing.T) {
		c.t = t
		c.sh("test -s /var/lib/nodehealthd/state.json")
		// The operator rule this test added is not the package's: dpkg
		// would rightly keep it (and its directory) through a purge.
		c.sh("rm /etc/nodehealthd/rules.d/e2e-self.yaml")
		c.sh("dpkg -r nodehealthd")
		c.removed("dpkg -r")
		// No daemon and no privileged helper (same binary name), and the
		// helper's socket is gone with the daemon (PartOf=).
		if out, rc := c.try("pgrep -x nodehealthd"); rc != 1 {
			t.Errorf("pgrep -x nodehealthd: exit %d (1 = no such process): %s", rc, out)
		}
		if c.systemctl("is-active nodehealthd-helper.socket") == "active" {
			t.Errorf("helper socket still active after dpkg -r")
		}
		if _, rc := c.try("test -e /run/nodehealthd-helper.sock"); rc == 0 {
			t.Errorf("helper socket file left after dpkg -r")
		}
		c.sh("test -d /var/lib/nodehealthd") // removal keeps state
		c.sh("dpkg -P nodehealthd")
		if _, rc := c.try("test -e /var/lib/nodehealthd || test -e /etc/nodehealthd"); rc == 0 {
			t.Errorf("purge left state or configuration:\n%s", c.sh("ls -la /var/lib/nodehealthd /etc/nodehealthd 2>&1 || true"))
		}
		if _, rc := c.try("test -e /etc/systemd/system/multi-user.target.wants/nodehealthd.service"); rc == 0 {
			t.Errorf("purge left the unit enabled")
		}
	})

	t.Run("rpm scriptlets", func(t *testing.T) {
		c.t = t
		c.sh("rpm -i --nodeps " + rpm)
		c.installed("rpm %post")
		c.sh("rpm -e --nodeps nodehealthd")
		c.removed("rpm -e")
	})
}
