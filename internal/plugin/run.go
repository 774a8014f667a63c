package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// Status is a plugin run's outcome in NPD's terms.
type Status string

const (
	OK      Status = "ok"
	Problem Status = "problem"
	// Unknown: the plugin exited with another status, was killed at its
	// timeout, or could not start. It changes nothing (docs/plugins.md).
	Unknown Status = "unknown"
)

// Result is one run of a rule's plugin.
type Result struct {
	Status Status
	// Output is the plugin's standard output, trimmed and bounded to the
	// monitor's max_output_length; for Unknown, what went wrong.
	Output string
	// TimedOut says the plugin was killed, with its process group, at
	// its timeout.
	TimedOut bool
}

// captureBytes is how much of a plugin's output is kept before it is
// trimmed and cut to max_output_length (NPD reads 4 KiB); the rest is
// read and discarded, so that a chatty plugin never blocks on its pipe.
const captureBytes = 4 << 10

// waitDelay bounds the wait for a plugin's output pipes after it exited
// or was killed: a child that left the process group may hold them open.
const waitDelay = time.Second

// pluginEnv is the whole environment of a plugin: nothing of the
// daemon's leaks into it.
var pluginEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}

// Credential resolves the user plugins run as; "" is the daemon's own.
func Credential(name string) (*syscall.Credential, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("plugin user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("plugin user %s: %w", name, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// Exec runs one rule's plugin as cred (nil: the daemon's user) in a
// process group of its own. At the timeout the whole group is killed, so
// that children a hung script started die with it; when the plugin exits,
// what it left running in its group is killed too.
func Exec(ctx context.Context, r Rule, maxOutput int, cred *syscall.Credential) Result {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.Path, r.Args...)
	cmd.Env, cmd.Dir = pluginEnv, "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	var stdout, stderr bounded
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	out := finding.Truncate(strings.TrimSpace(string(stdout.b)), maxOutput)
	if ctx.Err() == context.DeadlineExceeded {
		return Result{Status: Unknown, TimedOut: true, Output: fmt.Sprintf("timed out after %v; killed with its process group", r.Timeout)}
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return Result{Status: OK, Output: out}
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return Result{Status: Problem, Output: out}
	case errors.As(err, &exit):
		why := exit.ProcessState.String()
		if msg := strings.TrimSpace(string(stderr.b)); msg != "" {
			why += ": " + finding.Truncate(msg, maxOutput)
		}
		return Result{Status: Unknown, Output: why}
	}
	if cred != nil && errors.Is(err, syscall.EPERM) {
		// The shipped unit keeps no capabilities: switching users needs
		// the drop-in docs/plugins.md gives, or pluginUser: "".
		return Result{Status: Unknown, Output: fmt.Sprintf("cannot run as uid %d: %v (under the systemd unit, add the plugin drop-in of docs/plugins.md, or set pluginUser: \"\" in config.yaml)", cred.Uid, err)}
	}
	return Result{Status: Unknown, Output: "cannot run: " + err.Error()}
}

// bounded keeps the first captureBytes written and discards the rest.
type bounded struct{ b []byte }

func (w *bounded) Write(p []byte) (int, error) {
	if room := captureBytes - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Runner is the detector that runs the monitors' plugins.
type Runner struct {
	Monitors []*Monitor
	// User is the user plugins run as; "" is the daemon's own.
	User string
	Log  *slog.Logger
	// Active are the active findings at start: a permanent problem of a
	// rule that is gone is cleared, since no run will clear it.
	Active []finding.Finding
	// Observe counts a run (metrics); may be nil.
	Observe func(source string, r Rule, res Result)
}

var _ detector.Detector = (*Runner)(nil)

// Name implements detector.Detector.
func (*Runner) Name() string { return "plugins" }

// sourcePrefix marks the findings of plugins.
const sourcePrefix = "plugin:"

// Run implements detector.Detector: one goroutine per rule, each running
// its plugin at its interval, at most a monitor's concurrency of them at
// once. A run still going at its next tick makes that tick be skipped.
func (p *Runner) Run(ctx context.Context, emit detector.Emitter) error {
	p.clearOrphans(emit)
	cred, credErr := Credential(p.User)
	var wg sync.WaitGroup
	for _, m := range p.Monitors {
		slots := make(chan struct{}, m.Concurrency)
		for _, r := range m.Rules {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.loop(ctx, m, r, slots, cred, credErr, emit)
			}()
		}
	}
	wg.Wait()
	return nil
}

func (p *Runner) loop(ctx context.Context, m *Monitor, r Rule, slots chan struct{}, cred *syscall.Credential, credErr error, emit detector.Emitter) {
	tick := time.NewTicker(r.Interval)
	defer tick.Stop()
	var last Status
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		res := Result{Status: Unknown}
		if credErr != nil {
			res.Output = credErr.Error()
		} else {
			res = Exec(ctx, r, m.MaxOutputLength, cred)
		}
		<-slots
		if ctx.Err() != nil {
			return // killed because the daemon stops or reloads: no verdict
		}
		p.report(m, r, res, last, emit)
		last = res.Status
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// report turns a result into findings with NPD's meaning; last is the
// rule's previous status, so that an unknown streak is logged at Warn once.
func (p *Runner) report(m *Monitor, r Rule, res Result, last Status, emit detector.Emitter) {
	if p.Observe != nil {
		p.Observe(m.Source, r, res)
	}
	log := p.Log.With("plugin", m.Source, "path", r.Path, "reason", r.Reason, "type", r.Type)
	switch res.Status {
	case Unknown:
		level := slog.LevelWarn
		if last == Unknown {
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, "plugin status unknown; its condition is left as it was", "timed_out", res.TimedOut, "why", res.Output)
		return
	case OK:
		log.Debug("plugin ok")
		if r.Type == Permanent {
			emit.Clear(finding.Clear{Condition: r.Condition, Reason: r.Reason, Key: r.Key(), By: sourcePrefix + m.Source})
		}
		return
	}
	log.Debug("plugin reports a problem", "output", res.Output)
	msg := res.Output
	if msg == "" {
		msg = r.Path + " exited 1"
	}
	f := finding.Finding{Condition: r.Condition, Reason: r.Reason, Message: msg, Key: r.Key(),
		Rule: sourcePrefix + m.Source, Source: sourcePrefix + r.Path, Severity: finding.Warning, Detected: time.Now()}
	if r.Type == Permanent {
		f.Severity, f.Recovery = finding.Fatal, finding.Recovery{Probe: true}
	}
	emit.Raise(f)
}

// clearOrphans clears the active problems of plugin rules no longer
// configured: removing a plugin must not leave its condition False.
func (p *Runner) clearOrphans(emit detector.Emitter) {
	type problem struct{ rule, condition, reason, key string }
	live := map[problem]bool{}
	for _, m := range p.Monitors {
		for _, r := range m.Rules {
			if r.Type == Permanent {
				live[problem{sourcePrefix + m.Source, r.Condition, r.Reason, r.Key()}] = true
			}
		}
	}
	for _, f := range p.Active {
		if !strings.HasPrefix(f.Rule, sourcePrefix) || live[problem{f.Rule, f.Condition, f.Reason, f.Key}] {
			continue
		}
		p.Log.Info("clearing the problem of a plugin no longer configured", "rule", f.Rule, "reason", f.Reason, "key", f.Key)
		emit.Clear(finding.Clear{Condition: f.Condition, Reason: f.Reason, Key: f.Key, By: f.Rule})
	}
}
