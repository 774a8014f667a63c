// Package capture takes diagnostics bundles without the daemon doing the
// work: a Collector runs `nodehealthctl collect` in a child process at
// idle CPU and I/O priority, bounded in time and killed with its process
// group when the bound passes; the child also uploads the bundle, so that
// the AWS SDK stays out of the daemon. A Capturer is the publisher that
// starts a capture when a condition turns False or a configured Warning is
// committed, keeps the bundle directory within its retention and reports
// upload outcomes back to the pipeline as Warning findings.
//
// Data flows one way: Capturer.Publish only looks at what was committed
// and queues; collection, retention and upload happen on its own
// goroutine and never delay publishing.
package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Result is what `nodehealthctl collect --result json` prints on its
// standard output as one JSON line: the contract between the daemon and
// its collector.
type Result struct {
	// Path is the bundle written.
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
	// Items and Errors count the manifest's entries and the failed ones.
	Items    int  `json:"items"`
	Errors   int  `json:"errors"`
	Complete bool `json:"complete"`
	// Seconds is how long collecting took, upload excluded.
	Seconds float64       `json:"seconds"`
	Upload  *UploadResult `json:"upload,omitempty"`
}

// UploadResult says where the bundle went, or why it did not.
type UploadResult struct {
	// URL is the object written (s3://bucket/key), or the one that was
	// tried.
	URL string `json:"url"`
	// Attempts is how many requests were made (the SDK retries).
	Attempts int     `json:"attempts,omitempty"`
	Seconds  float64 `json:"seconds"`
	Error    string  `json:"error,omitempty"`
}

// Request is one collection.
type Request struct {
	// Output is the bundle file. It is written as Output+".partial" and
	// renamed when complete, so that a bundle that is there is whole.
	Output string
	// Sections limits the bundle to these top-level sections (diag
	// sections: nodehealthd, journal, kernel, system, network, storage,
	// kubernetes, containerd, gpu, neuron); empty collects everything.
	Sections []string
	// Upload sends the bundle there once written: s3://bucket/prefix/
	// (the object is the prefix plus the bundle's file name). {node} is
	// replaced by Node.
	Upload string
	// Node names the node for {node} (default: the collector's hostname).
	Node string
	// CollectTimeout bounds collecting and CommandTimeout each command the
	// collector runs (defaults DefaultCollectTimeout and
	// DefaultCommandTimeout); UploadTimeout bounds the upload, retries
	// included (default DefaultUploadTimeout).
	CollectTimeout, CommandTimeout, UploadTimeout time.Duration
	// KillMargin is how long past those the child is given before it is
	// killed (default DefaultKillMargin).
	KillMargin time.Duration
}

// Default bounds of a Request.
const (
	DefaultCollectTimeout = 5 * time.Minute
	DefaultCommandTimeout = 30 * time.Second
	DefaultUploadTimeout  = 5 * time.Minute
	// DefaultKillMargin is how long past its own bounds the child may
	// take to finish (write the manifest, print its result) before it is
	// killed.
	DefaultKillMargin = 30 * time.Second
)

func (r *Request) defaults() {
	if r.CollectTimeout <= 0 {
		r.CollectTimeout = DefaultCollectTimeout
	}
	if r.CommandTimeout <= 0 {
		r.CommandTimeout = DefaultCommandTimeout
	}
	if r.UploadTimeout <= 0 {
		r.UploadTimeout = DefaultUploadTimeout
	}
	if r.KillMargin <= 0 {
		r.KillMargin = DefaultKillMargin
	}
}

// Bound is how long the child may run in all before it is killed: its
// own bounds plus KillMargin.
func (r Request) Bound() time.Duration {
	r.defaults()
	b := r.CollectTimeout + r.KillMargin
	if r.Upload != "" {
		b += r.UploadTimeout
	}
	return b
}

// ErrTimeout is returned when the child ran past Request.Bound and was
// killed with its process group.
var ErrTimeout = errors.New("collector killed: it ran past its time bound")

// Collector runs `nodehealthctl collect`. One collection runs at a time
// per Collector (collections of one node compete for the same disks and
// journals); Run waits for its turn. It is safe for concurrent use.
type Collector struct {
	// Path is the nodehealthctl binary (see FindCollector).
	Path string
	// Args come before the request's flags: --root, --state-dir,
	// --config-dir of the daemon.
	Args []string
	// Log receives one line per failure to lower the child's priority.
	Log *slog.Logger
	// LowerPriority lowers the calling OS thread's CPU and I/O priority,
	// which the child started from it inherits (default lowerThread,
	// which counts a refusal).
	LowerPriority func() error

	slot chan struct{}
}

// NewCollector returns a collector running path with args first.
func NewCollector(path string, log *slog.Logger, args ...string) *Collector {
	if log == nil {
		log = slog.Default()
	}
	return &Collector{Path: path, Args: args, Log: log, slot: make(chan struct{}, 1)}
}

// FindCollector resolves the nodehealthctl to run: configured if set,
// else the one next to this executable (a package installs both in one
// directory), else nodehealthctl on $PATH.
func FindCollector(configured string) (string, error) {
	if configured != "" {
		if err := executable(configured); err != nil {
			return "", err
		}
		return configured, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "nodehealthctl")
		if executable(p) == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("nodehealthctl")
	if err != nil {
		return "", fmt.Errorf("nodehealthctl not found next to the daemon nor on $PATH (set diagnostics.collector): %w", err)
	}
	return p, nil
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file", p)
	}
	return nil
}

// Busy reports whether a collection is running.
func (c *Collector) Busy() bool { return len(c.slot) > 0 }

// Run collects a bundle into req.Output and uploads it when asked. It
// returns once the child has ended: by itself, or killed with its process
// group when ctx ends or req.Bound passes. The Result is what the child
// reported; a bundle that was written is returned even when the upload
// failed (Result.Upload.Error) or the child then failed.
func (c *Collector) Run(ctx context.Context, req Request) (Result, error) {
	req.defaults()
	if req.Output == "" {
		return Result{}, errors.New("capture: no output file")
	}
	select {
	case c.slot <- struct{}{}:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	defer func() { <-c.slot }()

	partial := req.Output + ".partial"
	defer os.Remove(partial)
	args := append(append([]string{"collect"}, c.Args...),
		"-o", partial, "--result", "json",
		"--timeout", req.CollectTimeout.String(), "--command-timeout", req.CommandTimeout.String())
	if len(req.Sections) > 0 {
		args = append(args, "--sections", strings.Join(req.Sections, ","))
	}
	if req.Upload != "" {
		args = append(args, "--upload", req.Upload, "--upload-timeout", req.UploadTimeout.String(),
			"--upload-name", filepath.Base(req.Output))
	}
	if req.Node != "" {
		args = append(args, "--node", req.Node)
	}

	ctx, cancel := context.WithTimeout(ctx, req.Bound())
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Path, args...)
	// Its own process group, so that the commands it runs die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limited{buf: &stdout, max: 64 << 10}
	cmd.Stderr = &limited{buf: &stderr, max: 16 << 10}
	start := time.Now()
	lower := c.LowerPriority
	if lower == nil {
		lower = lowerThread
	}
	lowerErr, err := startLowered(cmd, lower)
	if err != nil {
		return Result{}, fmt.Errorf("start collector: %w", err)
	}
	if lowerErr != nil {
		c.Log.Warn("cannot lower the collector's CPU and I/O priority; it runs at the daemon's", "err", lowerErr)
	}
	werr := cmd.Wait()
	took := time.Since(start)

	res, perr := parseResult(stdout.Bytes())
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	switch {
	case timedOut:
		return Result{}, fmt.Errorf("%w (%s)", ErrTimeout, req.Bound())
	case ctx.Err() != nil:
		return Result{}, ctx.Err()
	case perr != nil:
		return Result{}, fmt.Errorf("collector failed after %s: %v: %s", took.Round(time.Millisecond), orErr(werr, perr), tail(stderr.Bytes()))
	}
	if err := os.Rename(partial, req.Output); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Result{}, fmt.Errorf("collector reported %s but did not write it: %s", res.Path, tail(stderr.Bytes()))
		}
		return Result{}, fmt.Errorf("bundle: %w", err)
	}
	res.Path = req.Output
	if werr != nil && res.Upload == nil {
		// Written, but the child reported a failure it did not describe.
		return res, fmt.Errorf("collector: %v: %s", werr, tail(stderr.Bytes()))
	}
	return res, nil
}

func orErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// parseResult finds the last JSON result line of the child's output.
func parseResult(out []byte) (Result, error) {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		var r Result
		if err := json.Unmarshal(lines[i], &r); err == nil && r.Path != "" {
			return r, nil
		}
	}
	return Result{}, errors.New("no result line")
}

// tail is the end of the child's error output, for messages.
func tail(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 512 {
		b = b[len(b)-512:]
	}
	if len(b) == 0 {
		return "(no output)"
	}
	return strings.ReplaceAll(string(b), "\n", "; ")
}

// limited keeps the first max bytes written and drops the rest, so that
// a chatty child neither blocks nor fills memory.
type limited struct {
	buf *bytes.Buffer
	max int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
