// Package diag builds the diagnostics bundle of `nodehealthctl collect`: a
// tar.gz with the daemon's state and findings, the journals of the node's
// Kubernetes services, kernel, network, storage and system state, which an
// operator can attach to a ticket. It is meant to be comparable with the log
// capture of EKS's Node Monitoring Agent, run on demand from the node.
//
// Collection never stops at a failure: a missing command, a non-zero exit or
// a timeout is recorded in errors.txt and manifest.json and the next item is
// collected.
//
// Redaction is a security boundary with two layers. Files known to hold
// credentials (kubeconfigs, registry auth, containerd and EKS bootstrap
// configuration, process environments) are redacted structurally or left
// out (see treat); one that does not parse is left out rather than passed
// to patterns. Then every byte written passes through redact.Scan, so
// private keys and credentials do not leave the node even when they turn
// up in a log. The manifest counts what was redacted, per file and class.
package diag

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/redact"
)

// Runner runs a host command and returns its output (stdout, then stderr).
// Tests replace it.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// Generated is content produced by the caller (nodehealthctl renders the
// status text with the same code as `nodehealthctl status`).
type Generated struct {
	Path string
	Make func(ctx context.Context) ([]byte, error)
}

// Options configure Collect. Host paths are as on the node; they are read
// under Root.
type Options struct {
	Root string
	// StateDir is the daemon's state directory (default /var/lib/nodehealthd).
	StateDir string
	// ConfigDir holds config.yaml and rules.d (default /etc/nodehealthd).
	ConfigDir string
	// DaemonPaths says StateDir, ConfigDir and RulesDir are paths as this
	// process sees them, not host paths under Root: nodehealthd runs the
	// collector with its own (in Bottlerocket's host container its state
	// is the container's, the host is under Root).
	DaemonPaths bool
	// RulesDir is an operator rules directory outside ConfigDir, if any.
	RulesDir string
	// Timeout bounds the whole collection (default 5m); items not reached
	// are listed as skipped.
	Timeout time.Duration
	// CommandTimeout bounds each command (default 30s).
	CommandTimeout time.Duration
	// Since is how far back journals are read (default 24h).
	Since time.Duration
	// JournalLines caps each journal (default 20000 lines, the newest).
	JournalLines int
	// MaxBytes caps each file and command output (default 32 MiB).
	MaxBytes int
	// Run runs commands (default ExecRunner).
	Run Runner
	// Extra adds generated content.
	Extra []Generated
	// Version of the collecting tool, for the manifest.
	Version string
	// Now is the clock (tests replace it).
	Now func() time.Time
	// Sections limits the bundle to these top-level directories of it
	// (see Sections); empty collects everything.
	Sections []string
}

// Sections are the top-level directories of a bundle, the unit in which a
// collection can be limited (a NodeDiagnostic's categories map onto them).
var Sections = []string{"nodehealthd", "journal", "kernel", "system", "network", "storage", "kubernetes", "containerd", "gpu", "neuron"}

// CheckSections returns an error naming any section not in Sections.
func CheckSections(names []string) error {
	for _, n := range names {
		if !slices.Contains(Sections, n) {
			return fmt.Errorf("unknown section %q (want some of %s)", n, strings.Join(Sections, ", "))
		}
	}
	return nil
}

func (o *Options) defaults() {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.StateDir == "" {
		o.StateDir = "/var/lib/nodehealthd"
	}
	if o.ConfigDir == "" {
		o.ConfigDir = "/etc/nodehealthd"
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = 30 * time.Second
	}
	if o.Since <= 0 {
		o.Since = 24 * time.Hour
	}
	if o.JournalLines <= 0 {
		o.JournalLines = 20000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 32 << 20
	}
	if o.Run == nil {
		o.Run = ExecRunner(o.MaxBytes)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Entry is one item of the bundle, as listed in manifest.json.
type Entry struct {
	// Path is the file in the bundle; empty when nothing was written.
	Path string `json:"path,omitempty"`
	// Source is the host file or the command line collected.
	Source string `json:"source"`
	Bytes  int    `json:"bytes"`
	// Seconds is how long a command ran.
	Seconds   float64 `json:"seconds,omitempty"`
	Truncated bool    `json:"truncated,omitempty"`
	// Redactions is how many values were redacted, Redacted how many of
	// each class (redact.PrivateKey, redact.URLPassword, ...). Never the
	// values.
	Redactions int            `json:"redactions,omitempty"`
	Redacted   map[string]int `json:"redacted,omitempty"`
	// Error is why the item is missing or incomplete; it is also listed in
	// errors.txt.
	Error string `json:"error,omitempty"`
	// Skipped says why an item was deliberately left out (not present on
	// this host, holds private keys or user data); not an error. A
	// credential file that could not be redacted is an error instead.
	Skipped string `json:"skipped,omitempty"`
}

// Manifest describes a bundle; it is written as manifest.json.
type Manifest struct {
	Created  time.Time `json:"created"`
	Hostname string    `json:"hostname"`
	Root     string    `json:"root"`
	Version  string    `json:"version,omitempty"`
	// Sections are the sections collected when the collection was
	// limited to some; empty is all.
	Sections []string `json:"sections,omitempty"`
	// Complete is false when the time limit cut the collection short.
	Complete bool    `json:"complete"`
	Errors   int     `json:"errors"`
	Entries  []Entry `json:"entries"`
}

// Collect writes a tar.gz bundle to w and returns its manifest. It returns
// an error only when the bundle itself cannot be written; everything that
// fails to be collected is recorded in the bundle instead.
func Collect(ctx context.Context, w io.Writer, opts Options) (*Manifest, error) {
	opts.defaults()
	if err := CheckSections(opts.Sections); err != nil {
		return nil, err
	}
	now := opts.Now()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	c := &collector{opts: opts, ctx: ctx, man: &Manifest{Created: now.UTC(), Root: opts.Root, Version: opts.Version, Sections: opts.Sections, Complete: true}}
	c.man.Hostname = hostname(opts.Root)
	c.prefix = BundleName(opts.Root, now) + "/"
	gz := gzip.NewWriter(w)
	c.tw = tar.NewWriter(gz)
	c.modTime = now

	for _, it := range plan(&opts) {
		if len(opts.Sections) > 0 && !slices.Contains(opts.Sections, strings.SplitN(it.out, "/", 2)[0]) {
			continue
		}
		if ctx.Err() != nil {
			c.man.Complete = false
			c.record(Entry{Source: it.source(), Error: "not collected: the collection time limit (" + opts.Timeout.String() + ") was reached"})
			continue
		}
		if err := c.collect(it); err != nil {
			return c.man, err
		}
	}

	var errs bytes.Buffer
	for _, e := range c.man.Entries {
		if e.Error != "" {
			fmt.Fprintf(&errs, "%s: %s\n", e.Source, e.Error)
		}
	}
	if err := c.write("errors.txt", errs.Bytes(), &Entry{Source: "collection errors"}); err != nil {
		return c.man, err
	}
	man, err := json.MarshalIndent(c.man, "", "  ")
	if err != nil {
		return c.man, err
	}
	if err := c.write("manifest.json", append(man, '\n'), &Entry{Source: "manifest"}); err != nil {
		return c.man, err
	}
	if err := c.tw.Close(); err != nil {
		return c.man, err
	}
	return c.man, gz.Close()
}

// item is one thing to collect; exactly one of file, dir, cmd and gen is
// set.
type item struct {
	out  string   // path in the bundle (for dir: the directory)
	file string   // host file
	dir  string   // host directory, copied recursively
	cmd  []string // command line
	gen  func(ctx context.Context) ([]byte, error)
	// cmdlines renders the command lines of the processes under root.
	cmdlines bool
	// format redacts a command's output structurally before the final
	// pattern pass; files get theirs from treat.
	format format
	// optional files that do not exist are skipped without an error.
	optional bool
	// tail keeps the end of a file longer than MaxBytes (logs), not its
	// start.
	tail bool
	// local: file or dir is a path of this process, not under Root.
	local bool
	what  string // description for generated items
}

func (it item) source() string {
	switch {
	case it.file != "":
		return it.file
	case it.dir != "":
		return it.dir + "/"
	case len(it.cmd) > 0:
		return strings.Join(it.cmd, " ")
	case it.cmdlines:
		return "/proc/*/cmdline"
	}
	return it.what
}

type collector struct {
	opts    Options
	ctx     context.Context
	man     *Manifest
	tw      *tar.Writer
	prefix  string
	modTime time.Time
}

func (c *collector) record(e Entry) {
	if e.Error != "" {
		c.man.Errors++
		// A command's complaint or a generator's error may quote what it
		// was given.
		e.Error = redact.String(e.Error)
	}
	c.man.Entries = append(c.man.Entries, e)
}

func (c *collector) collect(it item) error {
	e := Entry{Source: it.source()}
	var data []byte
	f := it.format
	switch {
	case it.dir != "":
		return c.collectDir(it)
	case it.cmdlines:
		var counts redact.Counts
		var err error
		data, counts, err = cmdlines(c.opts.Root, c.opts.MaxBytes)
		if err != nil {
			e.Error = err.Error()
		}
		addCounts(&e, counts)
	case it.file != "":
		f = treat(it.file).format
		b, trunc, skip, err := c.readFile(c.root(it), it.file, it.tail)
		switch {
		case skip != "":
			e.Skipped = skip
		case errors.Is(err, fs.ErrNotExist) && it.optional:
			e.Skipped = "not present on this host"
		case err != nil:
			e.Error = err.Error()
		}
		if e.Skipped != "" || err != nil {
			c.record(e)
			return nil
		}
		data, e.Truncated = b, trunc
	case len(it.cmd) > 0:
		cctx, cancel := context.WithTimeout(c.ctx, c.opts.CommandTimeout)
		start := time.Now()
		b, err := c.opts.Run(cctx, it.cmd[0], it.cmd[1:]...)
		e.Seconds = time.Since(start).Seconds()
		if err != nil {
			e.Error = commandError(c.ctx, cctx, err, c.opts.CommandTimeout)
			// The last line is usually the command's own complaint
			// ("System has not been booted with systemd").
			if l := lastLine(b); l != "" {
				e.Error += ": " + l
			}
		}
		cancel()
		if len(b) > c.opts.MaxBytes {
			b, e.Truncated = b[:c.opts.MaxBytes], true
		}
		data = b
	default:
		b, err := it.gen(c.ctx)
		if err != nil {
			e.Error = err.Error()
		}
		data = b
	}
	if !c.redactStructured(f, &data, &e) || len(data) == 0 && e.Error != "" {
		c.record(e)
		return nil
	}
	return c.write(it.out, data, &e)
}

// redactStructured applies the structural redaction of f to a file known
// to hold credentials. When it does not parse (corrupt, cut off at
// MaxBytes, a command's error instead of its output) the file is left out
// and the entry says so: patterns alone are not trusted with it.
func (c *collector) redactStructured(f format, data *[]byte, e *Entry) bool {
	if f == plain || len(*data) == 0 {
		return true
	}
	out, counts, err := f.redact(*data)
	if err != nil {
		e.Error = leftOut(f, err)
		*data = nil
		return false
	}
	*data = out
	addCounts(e, counts)
	return true
}

func addCounts(e *Entry, c redact.Counts) {
	for class, n := range c {
		if e.Redacted == nil {
			e.Redacted = map[string]int{}
		}
		e.Redacted[class] += n
		e.Redactions += n
	}
}

// write adds one file to the bundle after the final pattern pass, and
// records it.
func (c *collector) write(name string, data []byte, e *Entry) error {
	data, counts := redact.Scan(data)
	addCounts(e, counts)
	e.Path, e.Bytes = name, len(data)
	if name != "manifest.json" && name != "errors.txt" {
		c.record(*e)
	}
	hdr := &tar.Header{Name: c.prefix + name, Mode: 0o600, Size: int64(len(data)), ModTime: c.modTime, Typeflag: tar.TypeReg}
	if err := c.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	if _, err := c.tw.Write(data); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return nil
}
