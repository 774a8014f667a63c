// Package consolesummary writes a compact health summary to the system
// console while a condition is False, so that a node nobody can reach
// still explains itself in `aws ec2 get-console-output`: its conditions,
// its active findings and the last kernel errors the rules recognized.
//
// The console is slow (a serial line) and shared with the kernel, so the
// summary is written at most every Interval, each at most MaxSummary
// bytes, and all of them within Budget bytes per boot: the budget is kept
// with the boot ID in a small file, so a restarting daemon does not spend
// it again. Writes are non-blocking and happen on the writer's own
// goroutine; Publish only takes a snapshot.
package consolesummary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodehealthd/nodehealthd/internal/atomicfile"
	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/diagmetrics"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/publish"
)

// Defaults of Options.
const (
	DefaultPath       = "/dev/console"
	DefaultInterval   = 5 * time.Minute
	DefaultBudget     = 64 << 10
	DefaultMaxSummary = 4 << 10
	// repeatAfter is how often an unchanged summary is written again:
	// the console may have scrolled, but repeating the same lines every
	// Interval would spend the budget in a few hours.
	repeatAfter = time.Hour
	// budgetFile keeps what this boot has written.
	budgetFile = "console-budget.json"
	// Lines shown per kind; the rest are counted.
	maxActive, maxKernel = 10, 5
	maxLine              = 300
	prefix               = "nodehealthd: "
)

// Options configure a Writer.
type Options struct {
	// Path is the console (default DefaultPath); tests use a file.
	Path string
	// Interval is the least time between two summaries (default
	// DefaultInterval).
	Interval time.Duration
	// Budget is how many bytes all summaries of one boot may take
	// (default DefaultBudget); MaxSummary bounds one (default
	// DefaultMaxSummary).
	Budget, MaxSummary int
	Log                *slog.Logger
	// Now is the clock (tests replace it).
	Now func() time.Time
}

// Writer is the console publisher.
type Writer struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	enabled bool
	dir     string
	snap    *snapshot

	wake chan struct{}

	// Writer goroutine only.
	budget     budget
	budgetDir  string
	lastBody   string
	failing    bool
	noticeDone bool
}

// snapshot is what a summary shows, copied from a committed update.
type snapshot struct {
	bootID      string
	node        string
	conditions  []condition.Condition
	active      []finding.Finding
	activeTotal int
	kernel      []finding.Finding
	anyFalse    bool
}

// budget is the content of budgetFile.
type budget struct {
	BootID string    `json:"bootID"`
	Bytes  int       `json:"bytes"`
	Last   time.Time `json:"last"`
	// Spent says the closing notice was written.
	Spent bool `json:"spent,omitempty"`
}

// New returns a Writer, switched off until Configure.
func New(opts Options) *Writer {
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Budget <= 0 {
		opts.Budget = DefaultBudget
	}
	if opts.MaxSummary <= 0 {
		opts.MaxSummary = DefaultMaxSummary
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Writer{opts: opts, log: opts.Log.With("component", "console-summary", "console", opts.Path), wake: make(chan struct{}, 1)}
}

// Configure switches the summary on or off and says where the per-boot
// budget is kept (the diagnostics directory).
func (w *Writer) Configure(enabled bool, dir string) {
	w.mu.Lock()
	w.enabled, w.dir = enabled, dir
	w.mu.Unlock()
	w.kick()
}

func (w *Writer) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Publish implements publish.Publisher: it copies what the summary shows
// and wakes the writer.
func (w *Writer) Publish(u publish.Update) {
	w.mu.Lock()
	on := w.enabled
	w.mu.Unlock()
	if !on || u.State == nil {
		return
	}
	s := &snapshot{bootID: u.State.BootID}
	if u.State.Cluster != nil {
		s.node = u.State.Cluster.Node
	}
	for _, t := range condition.Types(u.Conditions) {
		if c, ok := u.Conditions[t]; ok {
			s.conditions = append(s.conditions, c)
			s.anyFalse = s.anyFalse || c.Status == condition.False
		}
	}
	if s.anyFalse {
		s.activeTotal = len(u.State.Active)
		s.active = append(s.active, u.State.Active[:min(maxActive, len(u.State.Active))]...)
		for i := len(u.State.Recent) - 1; i >= 0 && len(s.kernel) < maxKernel; i-- {
			if f := u.State.Recent[i]; f.Source == "kmsg" {
				s.kernel = append(s.kernel, f)
			}
		}
		// Oldest first, as the console reads.
		for i, j := 0, len(s.kernel)-1; i < j; i, j = i+1, j-1 {
			s.kernel[i], s.kernel[j] = s.kernel[j], s.kernel[i]
		}
	}
	w.mu.Lock()
	w.snap = s
	w.mu.Unlock()
	w.kick()
}

// Start implements publish.Starter.
func (w *Writer) Start(ctx context.Context, _ publish.Feedback) {
	go w.run(ctx)
}

func (w *Writer) run(ctx context.Context) {
	timer := time.NewTimer(w.opts.Interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		next := w.step()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// step writes a summary if one is due and returns when to look again.
func (w *Writer) step() time.Duration {
	w.mu.Lock()
	on, dir, s := w.enabled, w.dir, w.snap
	w.mu.Unlock()
	if !on || s == nil || !s.anyFalse {
		return w.opts.Interval
	}
	now := w.opts.Now()
	w.loadBudget(dir, s.bootID)
	if wait := w.budget.Last.Add(w.opts.Interval).Sub(now); !w.budget.Last.IsZero() && wait > 0 && !w.budget.Last.After(now) {
		return wait
	}
	if w.budget.Spent {
		return w.opts.Interval
	}
	header, body := render(s, now, w.opts.MaxSummary)
	if body == w.lastBody && now.Sub(w.budget.Last) < repeatAfter {
		return w.opts.Interval
	}
	text := header + body
	const notice = prefix + "console summary budget for this boot spent; run nodehealthctl status on the node\n"
	if w.budget.Bytes+len(text) > w.opts.Budget-len(notice) {
		skipped.Inc()
		w.budget.Spent = true
		text = notice
	}
	n, err := w.write(text)
	w.budget.Bytes += n
	w.budget.Last = now
	w.lastBody = body
	if err == nil && !w.budget.Spent {
		summaries.Inc()
	}
	w.saveBudget(dir)
	return w.opts.Interval
}

// write writes text to the console without blocking: a console that
// cannot take it all now loses the rest, which is counted.
func (w *Writer) write(text string) (int, error) {
	f, err := os.OpenFile(w.opts.Path, os.O_WRONLY|os.O_APPEND|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	var n int
	if err == nil {
		n, err = f.WriteString(text)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	written.Add(float64(n))
	if err != nil {
		errorsTotal.Inc()
		if !w.failing {
			w.log.Warn("cannot write the summary to the console", "err", err, "written", n, "of", len(text))
		}
		w.failing = true
		return n, err
	}
	if w.failing {
		w.log.Info("writing the summary to the console again")
	}
	w.failing = false
	return n, nil
}

// loadBudget reads this boot's budget from dir once (again when dir
// changes). An unreadable file counts as a fresh budget: the summary is
// worth more than the bound on a broken node.
func (w *Writer) loadBudget(dir, bootID string) {
	if w.budgetDir == dir && w.budget.BootID == bootID {
		return
	}
	w.budgetDir = dir
	b, err := os.ReadFile(filepath.Join(dir, budgetFile))
	var bg budget
	if err == nil {
		err = json.Unmarshal(b, &bg)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errorsTotal.Inc()
		w.log.Warn("console budget file unreadable; starting a new budget", "err", err)
	}
	if bg.BootID != bootID {
		bg = budget{BootID: bootID}
	}
	w.budget = bg
}

func (w *Writer) saveBudget(dir string) {
	b, _ := json.Marshal(w.budget)
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		err = atomicfile.Write(filepath.Join(dir, budgetFile), b, 0o600)
	}
	if err != nil {
		errorsTotal.Inc()
		w.log.Warn("cannot save the console budget; a restart may write more than the budget this boot", "err", err)
	}
}

// render returns the summary's header line and its body, at most max
// bytes together, cut at a line.
func render(s *snapshot, now time.Time, max int) (header, body string) {
	node := s.node
	if node == "" {
		node, _ = os.Hostname()
	}
	header = fmt.Sprintf("%s---- %s %s: node health summary (nodehealthctl status for more) ----\n", prefix, node, now.UTC().Format(time.RFC3339))
	var lines []string
	var ok []string
	for _, c := range s.conditions {
		if c.Status == condition.False {
			lines = append(lines, fmt.Sprintf("%s=False %s since %s", c.Type, c.Reason, c.LastTransitionTime.UTC().Format(time.RFC3339)))
		} else {
			ok = append(ok, c.Type)
		}
	}
	if len(ok) > 0 {
		sort.Strings(ok)
		lines = append(lines, "True: "+strings.Join(ok, " "))
	}
	for _, f := range s.active {
		lines = append(lines, fmt.Sprintf("active %s/%s x%d since %s: %s", f.Condition, f.Reason, f.Count, f.Detected.UTC().Format("15:04:05Z"), f.Message))
	}
	if more := s.activeTotal - len(s.active); more > 0 {
		lines = append(lines, fmt.Sprintf("active: %d more", more))
	}
	for _, f := range s.kernel {
		lines = append(lines, fmt.Sprintf("kernel %s %s: %s", f.Detected.UTC().Format("15:04:05Z"), f.Reason, f.Message))
	}
	var b strings.Builder
	room := max - len(header)
	for i, l := range lines {
		l = prefix + finding.Truncate(strings.ReplaceAll(l, "\n", " "), maxLine) + "\n"
		if b.Len()+len(l) > room-64 && i < len(lines)-1 || b.Len()+len(l) > room {
			fmt.Fprintf(&b, "%s(%d more lines)\n", prefix, len(lines)-i)
			break
		}
		b.WriteString(l)
	}
	return header, b.String()
}

var (
	summaries = diagmetrics.Counter("console_summaries_total",
		"Summaries written to the console while a condition was False.")
	written = diagmetrics.Counter("console_bytes_total",
		"Bytes written to the console by the summary.")
	skipped = diagmetrics.Counter("console_budget_spent_total",
		"Times the summary stopped for the rest of the boot because its console budget was spent.")
	errorsTotal = diagmetrics.Counter("console_errors_total",
		"Failures to write the summary to the console (in part or whole) or to keep its budget file.")
)

// Collectors are the package's series, for the daemon's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{summaries, written, skipped, errorsTotal}
}
