package kmsg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/source"
)

// Entry is one parsed kmsg record together with the header fields that
// source.Record has no place for.
type Entry struct {
	source.Record
	// Usec is the record's timestamp in microseconds since boot, as the
	// kernel's local clock counts it.
	Usec uint64
	// Flags is the header's flags field: "-", or "c" for a record that
	// continues (older kernels also use "+").
	Flags string
}

// At returns the record with Time set to boot + Usec.
func (e Entry) At(boot time.Time) source.Record {
	r := e.Record
	r.Time = boot.Add(usecDuration(e.Usec))
	return r
}

// usecDuration converts without overflowing: a garbage timestamp must not
// wrap around into a time before boot.
func usecDuration(usec uint64) time.Duration {
	const limit = uint64(math.MaxInt64 / int64(time.Microsecond))
	return time.Duration(min(usec, limit)) * time.Microsecond
}

// Parse parses one record as a single read(2) of /dev/kmsg returns it:
//
//	prio_fac,seq,usec,flags[,more];message\n[ KEY=value\n]...
//
// Time is left zero; use ParseEntry and Entry.At to get it.
func Parse(raw []byte) (source.Record, error) {
	e, err := ParseEntry(raw)
	return e.Record, err
}

// ParseEntry is Parse that also returns the timestamp and flags.
func ParseEntry(raw []byte) (Entry, error) {
	line, rest, _ := bytes.Cut(raw, []byte{'\n'})
	e, err := parseLine(line)
	if err != nil {
		return Entry{}, err
	}
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if len(l) == 0 {
			continue
		}
		if l[0] != ' ' {
			return Entry{}, fmt.Errorf("kmsg: line %q after the message is not a dictionary line", clip(l))
		}
		k, v, err := parseDict(l[1:])
		if err != nil {
			return Entry{}, err
		}
		if e.Fields == nil {
			e.Fields = make(map[string]string, 2)
		}
		e.Fields[k] = v
	}
	return e, nil
}

// parseLine parses the "prio_fac,seq,usec,flags[,more];message" line.
func parseLine(line []byte) (Entry, error) {
	hdr, msg, ok := bytes.Cut(line, []byte{';'})
	if !ok {
		return Entry{}, fmt.Errorf("kmsg: no ';' after the header in %q", clip(line))
	}
	// Kernels with CONFIG_PRINTK_CALLER append ",caller=T123" and later
	// kernels may add more; only the first four fields have a fixed meaning.
	head := hdr
	var f [4][]byte
	n := 0
	for ; n < len(f) && hdr != nil; n++ {
		var ok bool
		f[n], hdr, ok = bytes.Cut(hdr, []byte{','})
		if !ok {
			hdr = nil
		}
	}
	if n < len(f) || len(f[3]) == 0 {
		return Entry{}, fmt.Errorf("kmsg: header %q needs prio,seq,usec,flags", clip(head))
	}
	pf, ok := parseUint(f[0], math.MaxUint32)
	if !ok {
		return Entry{}, fmt.Errorf("kmsg: bad priority/facility %q", clip(f[0]))
	}
	seq, ok := parseUint(f[1], math.MaxUint64)
	if !ok {
		return Entry{}, fmt.Errorf("kmsg: bad sequence number %q", clip(f[1]))
	}
	usec, ok := parseUint(f[2], math.MaxUint64)
	if !ok {
		return Entry{}, fmt.Errorf("kmsg: bad timestamp %q", clip(f[2]))
	}
	return Entry{
		Record: source.Record{
			Kind:     source.KindKmsg,
			Message:  unescape(msg),
			Priority: int(pf & 7),
			Facility: int(pf >> 3),
			Seq:      seq,
		},
		Usec:  usec,
		Flags: string(f[3]),
	}, nil
}

// parseDict parses a dictionary line without its leading space.
func parseDict(l []byte) (string, string, error) {
	k, v, ok := bytes.Cut(l, []byte{'='})
	if !ok || len(k) == 0 {
		return "", "", fmt.Errorf("kmsg: dictionary line %q is not KEY=value", clip(l))
	}
	return unescape(k), unescape(v), nil
}

// parseUint parses a decimal number no larger than limit. It is hand-rolled
// because strconv wants a string, which would cost an allocation per field.
func parseUint(b []byte, limit uint64) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (limit-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// unescape decodes the kernel's \xNN escapes. The kernel escapes every byte
// below ' ', from 127 up, and the backslash itself, so the decoding is
// unambiguous; a backslash not followed by xNN is kept as it is.
func unescape(b []byte) string {
	i := bytes.IndexByte(b, '\\')
	if i < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for ; i >= 0; i = bytes.IndexByte(b, '\\') {
		out, b = append(out, b[:i]...), b[i:]
		if len(b) >= 4 && b[1] == 'x' {
			hi, ok1 := unhex(b[2])
			lo, ok2 := unhex(b[3])
			if ok1 && ok2 {
				out, b = append(out, hi<<4|lo), b[4:]
				continue
			}
		}
		out, b = append(out, '\\'), b[1:]
	}
	return string(append(out, b...))
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// clip keeps error messages short when the input is garbage.
func clip(b []byte) []byte {
	const n = 64
	if len(b) > n {
		return b[:n]
	}
	return b
}

// ReadText reads kmsg records written as text, one per line, and calls fn
// for each; it stops at the first error fn returns and returns it. This is
// the form of a captured /dev/kmsg (cat /dev/kmsg > file) and of input typed
// at nodehealthctl:
//
//   - "prio,seq,usec,flags;message" lines are parsed like Parse does;
//   - a following line " KEY=value" adds a dictionary field to that record;
//   - any other line is a bare message: Priority and Facility -1, Seq one
//     past the previous record's, Usec equal to the previous record's (so
//     that replays are deterministic), text taken literally.
//
// Indented lines after a bare message, or not of the KEY=value form, are
// bare messages too, so that pasted stack traces are not mistaken for
// dictionary lines. Empty lines are skipped.
func ReadText(r io.Reader, fn func(Entry) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	var (
		cur     Entry
		pending bool // cur has not been passed to fn yet
		dict    bool // cur came from a kmsg header, so it may take dictionary lines
		nextSeq uint64
	)
	flush := func() error {
		if !pending {
			return nil
		}
		pending = false
		return fn(cur)
	}
	for sc.Scan() {
		line := bytes.TrimSuffix(sc.Bytes(), []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		if dict && line[0] == ' ' {
			if k, v, err := parseDict(line[1:]); err == nil {
				if cur.Fields == nil {
					cur.Fields = make(map[string]string, 2)
				}
				cur.Fields[k] = v
				continue
			}
		}
		if err := flush(); err != nil {
			return err
		}
		e, err := parseLine(line)
		dict = err == nil
		if !dict {
			e = Entry{
				Record: source.Record{
					Kind:     source.KindKmsg,
					Message:  string(line),
					Priority: -1,
					Facility: -1,
					Seq:      nextSeq,
				},
				Usec: cur.Usec,
			}
		}
		cur, pending, nextSeq = e, true, e.Seq+1
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("kmsg: line longer than 1 MiB: %w", err)
		}
		return fmt.Errorf("kmsg: %w", err)
	}
	return flush()
}
