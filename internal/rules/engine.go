package rules

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/reason"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

// Engine applies a Set to records: it turns each record into the
// observations of the rules that match it, which the policy stage
// (internal/policy) then turns into findings. It is not safe for
// concurrent use.
type Engine struct {
	set *Set
	// Streams for journal and file records are built on first use: the
	// (identifier, unit) pairs and paths seen are few.
	journal map[journalKey]*stream
	files   map[string]fileStream
	// last is the file of the previous record: a flood comes from one file,
	// and comparing its path costs less than hashing it.
	last     fileStream
	lastPath string
	mark     []uint32
	gen      uint32
	cands    []int
}

// journalKey selects journal rules: a record's identifier and unit. A
// struct key hashes both strings without building one from them, which
// allocated for every record with a long identifier or unit.
type journalKey struct{ identifier, unit string }

// fileStream is the stream of one tailed file and its finding source name.
type fileStream struct {
	st     *stream
	source string
}

// maxStreams bounds the stream caches; past it they are rebuilt.
const maxStreams = 1024

// NewEngine returns an engine for set.
func NewEngine(set *Set) *Engine {
	return &Engine{set: set, journal: map[journalKey]*stream{}, files: map[string]fileStream{}, mark: make([]uint32, len(set.rules))}
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
		k := journalKey{rec.Identifier, rec.Unit}
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

// Process evaluates one record and appends the observations it produces to
// out. One record can produce observations of several rules (a libnccl
// segfault is both AppCrash and NvidiaNCCLError). Their messages may share
// memory with rec until the policy stage has applied them.
func (e *Engine) Process(rec *source.Record, out []policy.Observation) []policy.Observation {
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
		if o, ok := e.eval(e.set.rules[ri], rec, src); ok {
			out = append(out, o)
		}
	}
	return out
}

func (e *Engine) eval(c *compiled, rec *source.Record, src string) (policy.Observation, bool) {
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
		return policy.Observation{}, false
	}
	for _, ex := range c.exclude {
		if ex.MatchString(msg) {
			return policy.Observation{}, false
		}
	}
	if c.in != nil && !c.in.values[capture(msg, loc, c.in.group[pi])] {
		return policy.Observation{}, false
	}
	if c.notIn != nil && c.notIn.values[capture(msg, loc, c.notIn.group[pi])] {
		return policy.Observation{}, false
	}
	expand := func(tmpl string) string { return string(re.ExpandString(nil, tmpl, msg, loc)) }
	return c.observe(expand, msg, src, rec.Time), true
}

// observe builds the rule's observation; expand fills in the captures.
func (c *compiled) observe(expand func(string) string, text, src string, at time.Time) policy.Observation {
	reason := c.reason
	if c.templated {
		reason = sanitizeReason(expand(c.reason))
	}
	key := ""
	if c.key != "" {
		key = expand(c.key)
	}
	if c.message != "" {
		text = expand(c.message)
	}
	return policy.Observation{
		Finding: finding.Finding{
			Condition: c.rule.Condition,
			Reason:    reason,
			Severity:  c.severity,
			Message:   strings.TrimSpace(text),
			Key:       key,
			Rule:      c.name,
			Source:    src,
			Detected:  at,
			LastSeen:  at,
			Count:     1,
			Recovery:  c.recovery,
		},
		Threshold: c.threshold,
	}
}

// Instantiate builds the observation of an Event from the first rule it
// names whose captureIn and captureNotIn admit its captures, as that rule
// builds one from a log line; ok is false when none does (or none is
// enabled). A rule whose reason, message or key refers to a capture the
// event does not carry is an error: the finding would not be the one the
// rule makes of a line.
func (s *Set) Instantiate(ev policy.Event) (o policy.Observation, ok bool, err error) {
	for _, name := range ev.Rules {
		c := s.byName[name]
		if c == nil {
			continue
		}
		for _, ref := range c.refs {
			if _, has := ev.Captures[ref]; !has {
				return policy.Observation{}, false, fmt.Errorf("rule %s refers to capture %q, which %s events do not carry", name, ref, ev.Source)
			}
		}
		if c.in != nil && !c.in.values[ev.Captures[c.in.name]] {
			continue
		}
		if c.notIn != nil && c.notIn.values[ev.Captures[c.notIn.name]] {
			continue
		}
		expand := func(tmpl string) string {
			return reason.Expand(tmpl, func(name string) string { return ev.Captures[name] })
		}
		return c.observe(expand, "", ev.Source, ev.Time), true, nil
	}
	return policy.Observation{}, false, nil
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
