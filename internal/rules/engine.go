package rules

import (
	"regexp"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

// Engine applies a Set to records. It keeps threshold windows, so one
// engine serves one ordered stream of records; it is not safe for
// concurrent use.
type Engine struct {
	set     *Set
	windows Windows
	dirty   bool
	// Streams for journal and file records are built on first use: the
	// (identifier, unit) pairs and paths seen are few.
	journal map[string]*stream
	files   map[string]fileStream
	// last is the file of the previous record: a flood comes from one file,
	// and comparing its path costs less than hashing it.
	last     fileStream
	lastPath string
	mark     []uint32
	gen      uint32
	cands    []int
	cleaner  finding.Cleaner
}

// fileStream is the stream of one tailed file and its finding source name.
type fileStream struct {
	st     *stream
	source string
}

// Windows is the threshold bookkeeping: match times per reason and key.
// It is saved in the state file with the source positions so that a crash
// neither loses nor double-counts a match.
type Windows map[string]Window

// Window holds the recent match times of one reason and key.
type Window struct {
	Times  []time.Time   `json:"times"`
	Window time.Duration `json:"window"`
}

// maxStreams bounds the stream caches; past it they are rebuilt.
const maxStreams = 1024

// NewEngine returns an engine for set with empty windows.
func NewEngine(set *Set) *Engine {
	return &Engine{set: set, windows: Windows{}, journal: map[string]*stream{}, files: map[string]fileStream{}, mark: make([]uint32, len(set.rules))}
}

// SetWindows restores threshold state (from the state file).
func (e *Engine) SetWindows(w Windows) {
	e.windows = Windows{}
	for k, v := range w {
		e.windows[k] = Window{Times: slices.Clone(v.Times), Window: v.Window}
	}
}

// Windows returns a copy of the threshold state and whether it changed
// since the last call.
func (e *Engine) Windows() (Windows, bool) {
	out := make(Windows, len(e.windows))
	for k, v := range e.windows {
		out[k] = Window{Times: slices.Clone(v.Times), Window: v.Window}
	}
	changed := e.dirty
	e.dirty = false
	return out, changed
}

// Expire forgets windows with no match inside their span, bounding memory
// for keys that never reach their threshold.
func (e *Engine) Expire(now time.Time) {
	for k, w := range e.windows {
		if len(w.Times) == 0 || now.Sub(w.Times[len(w.Times)-1]) > w.Window {
			delete(e.windows, k)
			e.dirty = true
		}
	}
}

// streamFor returns the stream of rules for rec and the source name of its
// findings.
func (e *Engine) streamFor(rec *source.Record) (*stream, string) {
	switch rec.Kind {
	case source.KindKmsg:
		return e.set.kmsg, string(source.KindKmsg)
	case source.KindJournal:
		if len(e.set.journal) == 0 {
			return nil, ""
		}
		k := rec.Identifier + "\x00" + rec.Unit
		st, ok := e.journal[k]
		if !ok {
			if len(e.journal) >= maxStreams {
				clear(e.journal)
			}
			st = e.set.journalStream(rec.Identifier, rec.Unit)
			e.journal[k] = st
		}
		return st, string(source.KindJournal)
	case source.KindFile:
		if len(e.set.files) == 0 {
			return nil, ""
		}
		if rec.Path == e.lastPath && e.last.source != "" {
			return e.last.st, e.last.source
		}
		fs, ok := e.files[rec.Path]
		if !ok {
			if len(e.files) >= maxStreams {
				clear(e.files)
			}
			fs = fileStream{st: e.set.fileStream(rec.Path), source: SourceName(rec)}
			e.files[rec.Path] = fs
		}
		e.last, e.lastPath = fs, rec.Path
		return fs.st, fs.source
	}
	return nil, ""
}

// Process evaluates one record and appends the findings it produces to out.
// One record can produce findings from several rules (a libnccl segfault is
// both AppCrash and NvidiaNCCLError).
func (e *Engine) Process(rec *source.Record, out []finding.Finding) []finding.Finding {
	st, src := e.streamFor(rec)
	if st == nil {
		return out
	}
	msg := rec.Message
	cands := e.cands[:0]
	if st.ac != nil && len(msg) > 0 {
		// FindAllOverlapping is a plain DFA walk that allocates only when a
		// literal occurs. IsMatch skips ahead with one IndexByte scan per
		// distinct first byte of the literals: a fast reject when they are
		// few, slower than the walk when they are many (the catalogue).
		b := unsafe.Slice(unsafe.StringData(msg), len(msg))
		if st.skipAhead && !st.ac.IsMatch(b) {
			b = nil
		}
		if ms := st.ac.FindAllOverlapping(b); len(ms) > 0 {
			e.gen++
			for _, m := range ms {
				for _, ri := range st.litRules[m.PatternID] {
					if e.mark[ri] != e.gen {
						e.mark[ri] = e.gen
						cands = append(cands, ri)
					}
				}
			}
		}
	}
	cands = append(cands, st.always...)
	if len(cands) == 0 {
		return out
	}
	if len(cands) > 1 {
		slices.Sort(cands) // rule order decides output order
	}
	e.cands = cands
	for _, ri := range cands {
		if f, ok := e.eval(e.set.rules[ri], rec, src); ok {
			out = append(out, f)
		}
	}
	return out
}

func (e *Engine) eval(c *compiled, rec *source.Record, src string) (finding.Finding, bool) {
	msg := rec.Message
	var loc []int
	var re *regexp.Regexp
	pi := -1
	for i, p := range c.patterns {
		if loc = p.FindStringSubmatchIndex(msg); loc != nil {
			re, pi = p, i
			break
		}
	}
	if loc == nil {
		return finding.Finding{}, false
	}
	for _, ex := range c.exclude {
		if ex.MatchString(msg) {
			return finding.Finding{}, false
		}
	}
	if c.in != nil && !c.in.values[capture(msg, loc, c.in.group[pi])] {
		return finding.Finding{}, false
	}
	if c.notIn != nil && c.notIn.values[capture(msg, loc, c.notIn.group[pi])] {
		return finding.Finding{}, false
	}
	reason, severity, threshold, recovery := c.reason, c.severity, c.threshold, c.recovery
	if c.templated {
		reason = sanitizeReason(string(re.ExpandString(nil, c.reason, msg, loc)))
		if ov, ok := e.set.overrides[reason]; ok {
			if ov.Enabled != nil && !*ov.Enabled {
				return finding.Finding{}, false
			}
			tmp := *c
			applyOverride(&tmp, ov)
			severity, threshold, recovery = tmp.severity, tmp.threshold, tmp.recovery
		}
	}
	key := ""
	if c.key != "" {
		key = string(re.ExpandString(nil, c.key, msg, loc))
	}
	if threshold.Count > 1 && !e.count(reason+"\x00"+key, rec.Time, threshold) {
		return finding.Finding{}, false
	}
	text := msg
	if c.message != "" {
		text = string(re.ExpandString(nil, c.message, msg, loc))
	}
	return finding.Finding{
		Condition: c.rule.Condition,
		Reason:    reason,
		Severity:  severity,
		// The cleaner's result is a copy: rec.Message may share its memory
		// with the rest of the batch (source.Text).
		Message:  e.cleaner.Clean(strings.TrimSpace(text)),
		Key:      finding.Truncate(key, 256),
		Rule:     c.name,
		Source:   src,
		Detected: rec.Time,
		LastSeen: rec.Time,
		Count:    1,
		Recovery: recovery,
	}, true
}

// count records a match in the reason/key window and reports whether the
// threshold is reached; reaching it empties the window.
func (e *Engine) count(k string, at time.Time, t Threshold) bool {
	w := e.windows[k]
	w.Window = time.Duration(t.Window)
	keep := w.Times[:0]
	for _, ts := range w.Times {
		if at.Sub(ts) < w.Window {
			keep = append(keep, ts)
		}
	}
	w.Times = append(keep, at)
	e.dirty = true
	if len(w.Times) >= t.Count {
		delete(e.windows, k)
		return true
	}
	e.windows[k] = w
	return false
}

func capture(msg string, loc []int, g int) string {
	if g < 0 || 2*g+1 >= len(loc) || loc[2*g] < 0 {
		return ""
	}
	return msg[loc[2*g]:loc[2*g+1]]
}

// sanitizeReason keeps a reason built from captured text to the characters
// Kubernetes and our journal fields accept.
func sanitizeReason(r string) string {
	return strings.Map(func(c rune) rune {
		if c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			return c
		}
		return -1
	}, r)
}

// SourceName is the finding source for a record: "kmsg", "journal" or
// "file:<path>".
func SourceName(rec *source.Record) string {
	if rec.Kind == source.KindFile {
		return "file:" + rec.Path
	}
	return string(rec.Kind)
}
