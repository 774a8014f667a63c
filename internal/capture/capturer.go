package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/publish"
)

// RateLimit is how often one reason may be captured: the first bundle of
// an episode is the one that explains it, and a flapping condition must
// not fill the disk or keep the node busy collecting.
const RateLimit = time.Hour

// maxQueued bounds the triggers waiting while a capture runs; more are
// dropped and counted (each would be minutes of collection anyway).
const maxQueued = 16

// trigger is a reason to capture, taken from a committed update.
type trigger struct {
	reason    string
	condition string
	// what says why, for the log: "KernelReady=False" or "Warning".
	what string
	at   time.Time
	// node is the Node the cluster publisher writes to, if known.
	node string
}

// Options configure a Capturer.
type Options struct {
	// Collector runs the collections. Nil: every trigger is logged as a
	// failed capture (nodehealthctl was not found at start).
	Collector *Collector
	// CollectorErr is why Collector is nil.
	CollectorErr error
	Log          *slog.Logger
	// Now is the clock (tests replace it).
	Now func() time.Time
	// Request sets the bounds of each collection (Output, Upload and Node
	// are filled in per capture).
	Request Request
	// Root is the host root, whose hostname names bundles while the
	// cluster publisher has not named the Node.
	Root string
}

// Capturer is the publisher that captures bundles. Publish only compares
// conditions and queues; Start runs the worker that collects.
type Capturer struct {
	opts Options
	log  *slog.Logger

	mu  sync.Mutex
	cfg config.Diagnostics

	// Pipeline goroutine only.
	seeded bool
	status map[string]string
	node   string

	queue    chan trigger
	outcomes chan outcome
}

// New returns a Capturer configured with cfg.
func New(opts Options, cfg config.Diagnostics) *Capturer {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Capturer{
		opts: opts, log: opts.Log.With("component", "diagnostics"), cfg: cfg,
		status: map[string]string{}, queue: make(chan trigger, maxQueued), outcomes: make(chan outcome, 64),
	}
}

// Configure applies a reloaded configuration; the next trigger and the
// next capture use it.
func (c *Capturer) Configure(cfg config.Diagnostics) {
	c.mu.Lock()
	c.cfg = cfg
	c.mu.Unlock()
}

func (c *Capturer) config() config.Diagnostics {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

// Publish implements publish.Publisher. It returns at once: the first
// update only records the conditions (a condition already False at start
// was captured, or not, by the run that saw it turn), later ones queue a
// capture for every condition that turned False and every new Warning of
// diagnostics.onWarning.
func (c *Capturer) Publish(u publish.Update) {
	if u.State != nil && u.State.Cluster != nil && u.State.Cluster.Node != "" {
		c.node = u.State.Cluster.Node
	}
	cfg := c.config()
	seeded := c.seeded
	c.seeded = true
	for typ, cond := range u.Conditions {
		prev, known := c.status[typ]
		c.status[typ] = cond.Status
		if !seeded || cond.Status != condition.False || (known && prev == condition.False) || !cfg.OnFatal.On() {
			continue
		}
		c.enqueue(trigger{reason: cond.Reason, condition: typ, what: typ + "=False", at: u.Time})
	}
	if len(cfg.OnWarning) == 0 {
		return
	}
	for _, f := range u.New {
		if f.Severity == finding.Warning && contains(cfg.OnWarning, f.Reason) {
			c.enqueue(trigger{reason: f.Reason, condition: f.Condition, what: "Warning", at: u.Time})
		}
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func (c *Capturer) enqueue(t trigger) {
	t.node = c.node
	select {
	case c.queue <- t:
	default:
		skippedTotal.WithLabelValues(skipQueueFull).Inc()
		c.log.Warn("diagnostics capture dropped: too many captures waiting", "reason", t.reason, "trigger", t.what, "queued", maxQueued)
	}
}

// Start implements publish.Starter: it runs the worker until ctx ends.
func (c *Capturer) Start(ctx context.Context, _ publish.Feedback) {
	go c.work(ctx)
}

func (c *Capturer) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-c.queue:
			c.capture(ctx, t)
		}
	}
}

// capture runs one trigger: rate limit, collection, retention, report.
func (c *Capturer) capture(ctx context.Context, t trigger) {
	cfg := c.config()
	if t.what == "Warning" && !contains(cfg.OnWarning, t.reason) || t.what != "Warning" && !cfg.OnFatal.On() {
		return // switched off while it waited
	}
	dir := cfg.BundleDir()
	log := c.log.With("reason", t.reason, "trigger", t.what, "dir", dir)
	now := c.opts.Now()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		errorsTotal.WithLabelValues("dir").Inc()
		capturesTotal.WithLabelValues(resultFailed).Inc()
		c.failed(log, t, cfg, fmt.Errorf("cannot create the diagnostics directory: %w", err))
		return
	}
	ix, err := loadIndex(dir)
	if err != nil {
		errorsTotal.WithLabelValues("index").Inc()
		log.Warn("capture index unreadable; starting a new one", "err", err)
	}
	if !ix.allow(t.reason, now, RateLimit) {
		skippedTotal.WithLabelValues(skipRateLimited).Inc()
		log.Info("diagnostics capture skipped: this reason was captured within the hour", "last", ix.Last[t.reason])
		return
	}
	// Recorded before collecting: a crash during the capture must not
	// make the next run capture the same reason again at once.
	if err := ix.save(dir); err != nil {
		errorsTotal.WithLabelValues("index").Inc()
		log.Warn("cannot save the capture index; the rate limit will not survive a restart", "err", err)
	}
	if c.opts.Collector == nil {
		capturesTotal.WithLabelValues(resultFailed).Inc()
		c.failed(log, t, cfg, fmt.Errorf("no collector: %w", c.opts.CollectorErr))
		return
	}
	removePartial(dir)
	req := c.opts.Request
	node := t.node
	if node == "" {
		node = HostName(c.opts.Root)
	}
	req.Output = filepath.Join(dir, BundleFile(node, t.reason, now))
	req.Upload = cfg.Upload.S3
	req.Node = t.node
	log.Info("capturing a diagnostics bundle", "file", req.Output, "upload", req.Upload)
	res, err := c.opts.Collector.Run(ctx, req)
	switch {
	case errors.Is(err, ErrTimeout):
		capturesTotal.WithLabelValues(resultTimedOut).Inc()
		c.failed(log, t, cfg, err)
	case err != nil && res.Path == "":
		if ctx.Err() != nil {
			return // stopping
		}
		capturesTotal.WithLabelValues(resultFailed).Inc()
		c.failed(log, t, cfg, err)
	default:
		capturesTotal.WithLabelValues(resultWritten).Inc()
		log.Info("diagnostics bundle written", "file", res.Path, "bytes", res.Bytes, "items", res.Items,
			"problems", res.Errors, "complete", res.Complete, "seconds", res.Seconds)
		if err != nil {
			log.Warn("collector reported a failure after writing the bundle", "err", err)
		}
		c.uploaded(log, t, res)
	}
	removed, err := prune(dir, cfg.KeepBundles(), cfg.KeepBytes())
	if err != nil {
		errorsTotal.WithLabelValues("retention").Inc()
		log.Warn("cannot remove old bundles", "err", err)
	}
	if len(removed) > 0 {
		removedTotal.Add(float64(len(removed)))
		log.Info("removed old diagnostics bundles to keep the retention", "removed", strings.Join(removed, " "),
			"keep", cfg.KeepBundles(), "bytes", cfg.KeepBytes())
	}
}

// HostName is the hostname of the host under root, lower-cased as the
// kubelet names its Node when nothing overrides it: the node's name for
// bundles and upload keys when the cluster publisher has not named it.
func HostName(root string) string {
	if b, err := os.ReadFile(host.Path(root, "/proc/sys/kernel/hostname")); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return strings.ToLower(string(bytes.TrimSpace(b)))
	}
	h, _ := os.Hostname()
	return strings.ToLower(h)
}

// failed logs a capture that wrote nothing; when an upload was
// configured, the missing upload is reported like a failed one.
func (c *Capturer) failed(log *slog.Logger, t trigger, cfg config.Diagnostics, err error) {
	log.Error("diagnostics capture failed", "err", err)
	if cfg.Upload.S3 != "" {
		uploadsTotal.WithLabelValues("failure").Inc()
		c.report(outcome{trigger: t, url: cfg.Upload.S3, err: "no bundle to upload: " + err.Error()})
	}
}

func (c *Capturer) uploaded(log *slog.Logger, t trigger, res Result) {
	if res.Upload == nil {
		return
	}
	o := outcome{trigger: t, url: res.Upload.URL, bytes: res.Bytes, err: res.Upload.Error}
	if o.err != "" {
		uploadsTotal.WithLabelValues("failure").Inc()
		log.Error("diagnostics bundle upload failed; the bundle stays on the node", "url", o.url, "attempts", res.Upload.Attempts, "err", o.err)
	} else {
		uploadsTotal.WithLabelValues("success").Inc()
		log.Info("diagnostics bundle uploaded", "url", o.url, "seconds", res.Upload.Seconds)
	}
	c.report(o)
}

func (c *Capturer) report(o outcome) {
	select {
	case c.outcomes <- o:
	default:
		errorsTotal.WithLabelValues("report").Inc()
		c.log.Warn("upload outcome not reported: too many waiting", "url", o.url)
	}
}
