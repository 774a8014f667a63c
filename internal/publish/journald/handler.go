// Package journald writes the daemon's logs and findings to the systemd
// journal through its native protocol, with structured fields, so that
// operators can select them with `journalctl -u nodehealthd FIELD=value`.
//
// Every entry carries SYSLOG_IDENTIFIER=nodehealthd, and every finding entry
// a NODEHEALTH_REASON field: the daemon's journal source skips both, so the
// daemon never reads its own output back as evidence.
package journald

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// Identifier is the SYSLOG_IDENTIFIER of every entry the daemon writes.
const Identifier = "nodehealthd"

// Sender delivers one journal entry; journal.Send in the daemon.
type Sender func(message string, priority journal.Priority, fields map[string]string) error

// UnderJournal reports whether stderr is connected to the journal (the
// daemon was started by systemd with StandardError=journal), which is when
// native journal output replaces plain text.
func UnderJournal() bool {
	ok, err := journal.StderrIsJournalStream()
	return err == nil && ok
}

// Handler is a slog.Handler writing each record as one journal entry:
// MESSAGE is the message followed by its attributes as key=value (what
// `journalctl` shows), and every attribute is also a field of its own
// (what `journalctl FIELD=value` and `-o verbose` use).
type Handler struct {
	out      *sink
	level    slog.Leveler
	fallback io.Writer // written only by the queue's goroutine
	// attrs are the attributes added with WithAttrs, already flattened
	// with their group prefix; groups is the current group path.
	attrs  []flatAttr
	groups []string
}

type flatAttr struct {
	path  []string // group path and key
	value string
}

// NewHandler returns a handler writing at level to the journal from a
// queue, so that logging never waits for journald. When the
// journal socket refuses an entry, the formatted line goes to stderr
// (which systemd also collects) rather than being lost.
func NewHandler(level slog.Leveler) *Handler {
	return newHandler(std(), level, os.Stderr)
}

func newHandler(out *sink, level slog.Leveler, fallback io.Writer) *Handler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &Handler{out: out, level: level, fallback: fallback}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]flatAttr(nil), h.attrs...)
	for _, a := range as {
		c.attrs = flatten(c.attrs, h.groups, a)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.groups = append(append([]string(nil), h.groups...), name)
	return &c
}

// Handle implements slog.Handler.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	attrs := h.attrs
	if r.NumAttrs() > 0 {
		attrs = append([]flatAttr(nil), h.attrs...)
		r.Attrs(func(a slog.Attr) bool {
			attrs = flatten(attrs, h.groups, a)
			return true
		})
	}
	var msg strings.Builder
	msg.WriteString(r.Message)
	fields := make(map[string]string, len(attrs)+4)
	for _, a := range attrs {
		msg.WriteByte(' ')
		msg.WriteString(strings.Join(a.path, "."))
		msg.WriteByte('=')
		msg.WriteString(quote(a.value))
		fields[FieldName(a.path)] = a.value
	}
	fields["SYSLOG_IDENTIFIER"] = Identifier
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		if f.File != "" {
			fields["CODE_FILE"] = f.File
			fields["CODE_LINE"] = strconv.Itoa(f.Line)
			fields["CODE_FUNC"] = f.Function
		}
	}
	line := msg.String()
	h.out.put(line, Priority(r.Level), fields, func(error) {
		fmt.Fprintf(h.fallback, "%s %s\n", r.Level, line)
	})
	return nil
}

// Priority maps a slog level to a syslog priority.
func Priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}

// flatten appends a's leaves, with their group path, to out. Following
// slog's rules, empty attributes and empty groups are dropped and an
// unnamed group is inlined.
func flatten(out []flatAttr, groups []string, a slog.Attr) []flatAttr {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return out
	}
	if a.Value.Kind() == slog.KindGroup {
		sub := groups
		if a.Key != "" {
			sub = append(append([]string(nil), groups...), a.Key)
		}
		for _, g := range a.Value.Group() {
			out = flatten(out, sub, g)
		}
		return out
	}
	var v string
	switch a.Value.Kind() {
	case slog.KindTime:
		v = a.Value.Time().Format(time.RFC3339Nano)
	default:
		v = a.Value.String()
	}
	return append(out, flatAttr{path: append(append([]string(nil), groups...), a.Key), value: v})
}

// reserved are fields the journal or this package gives a meaning to; an
// attribute of the same name is renamed rather than allowed to overwrite
// the entry's message, priority or identity.
var reserved = map[string]bool{
	"MESSAGE": true, "MESSAGE_ID": true, "PRIORITY": true, "SYSLOG_IDENTIFIER": true,
	"SYSLOG_FACILITY": true, "SYSLOG_PID": true, "SYSLOG_TIMESTAMP": true, "SYSLOG_RAW": true,
	"CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true, "ERRNO": true, "TID": true,
	"DOCUMENTATION": true, "INVOCATION_ID": true, "USER_INVOCATION_ID": true,
	"UNIT": true, "USER_UNIT": true, "OBJECT_PID": true,
}

// maxFieldName is journald's limit on field name length.
const maxFieldName = 64

// FieldName turns an attribute path into a valid journal field name:
// upper case, [A-Z0-9_] only, starting with a letter. Names that would
// collide with a field the journal or this package defines (including the
// NODEHEALTH_ namespace of finding entries) get an ATTR_ prefix.
func FieldName(path []string) string {
	var b strings.Builder
	for i, p := range path {
		if i > 0 {
			b.WriteByte('_')
		}
		for _, r := range p {
			switch {
			case r >= 'a' && r <= 'z':
				b.WriteRune(r - 'a' + 'A')
			case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
				b.WriteRune(r)
			default:
				b.WriteByte('_')
			}
		}
	}
	n := strings.TrimLeft(b.String(), "_")
	if n == "" || n[0] < 'A' || n[0] > 'Z' || reserved[n] || strings.HasPrefix(n, "NODEHEALTH_") {
		n = "ATTR_" + n
	}
	if len(n) > maxFieldName {
		n = n[:maxFieldName]
	}
	return n
}

// quote writes v as slog's text handler would: bare when unambiguous.
func quote(v string) string {
	if v == "" {
		return `""`
	}
	for _, r := range v {
		if r <= ' ' || r == '=' || r == '"' || r == 0x7f || r > 0x7e && !strconv.IsPrint(r) {
			return strconv.Quote(v)
		}
	}
	return v
}
