package kmsg

import (
	"bytes"
	"errors"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/source"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		want   Entry
		errHas string // non-empty: Parse must fail with an error containing this
	}{
		{
			name: "kernel record",
			raw:  "6,339,5140900,-;NET: Registered protocol family 10\n",
			want: entry(6, 0, 339, 5140900, "-", "NET: Registered protocol family 10", nil),
		},
		{
			name: "userspace write has facility 1",
			raw:  "12,341,3735882716,-;kmsgtest raw format\n",
			want: entry(4, 1, 341, 3735882716, "-", "kmsgtest raw format", nil),
		},
		{
			name: "dictionary lines",
			raw:  "3,1234,9999,-;usb 1-1: device descriptor read/64, error -71\n SUBSYSTEM=usb\n DEVICE=c189:1\n",
			want: entry(3, 0, 1234, 9999, "-", "usb 1-1: device descriptor read/64, error -71",
				map[string]string{"SUBSYSTEM": "usb", "DEVICE": "c189:1"}),
		},
		{
			name: "dictionary value with = and escapes",
			raw:  "6,1,2,-;m\n K=a=b\\x09c\n",
			want: entry(6, 0, 1, 2, "-", "m", map[string]string{"K": "a=b\tc"}),
		},
		{
			name: "escapes decoded",
			raw:  `4,5,6,-;tab\x09here back\x5cslash nl\x0aX high\xc3\xA9` + "\n",
			want: entry(4, 0, 5, 6, "-", "tab\there back\\slash nl\nX high\u00e9", nil),
		},
		{
			name: "invalid escapes kept",
			raw:  `4,5,6,-;a\xZZ b\x1 c\y d\`,
			want: entry(4, 0, 5, 6, "-", `a\xZZ b\x1 c\y d\`, nil),
		},
		{
			name: "caller field",
			raw:  "6,7,8,-,caller=T1;msg\n",
			want: entry(6, 0, 7, 8, "-", "msg", nil),
		},
		{
			name: "several extra fields and continuation flag",
			raw:  "6,7,8,c,caller=C0,future=1;msg\n",
			want: entry(6, 0, 7, 8, "c", "msg", nil),
		},
		{
			name: "no trailing newline",
			raw:  "6,1,2,-;x",
			want: entry(6, 0, 1, 2, "-", "x", nil),
		},
		{
			name: "separators inside the message",
			raw:  "6,1,2,-;a;b,c=d\n",
			want: entry(6, 0, 1, 2, "-", "a;b,c=d", nil),
		},
		{
			name: "empty message",
			raw:  "6,1,2,-;\n",
			want: entry(6, 0, 1, 2, "-", "", nil),
		},
		{
			name: "blank lines after the message ignored",
			raw:  "6,1,2,-;m\n\n K=v\n\n",
			want: entry(6, 0, 1, 2, "-", "m", map[string]string{"K": "v"}),
		},
		{
			name: "largest numbers",
			raw:  "4294967295,18446744073709551615,18446744073709551615,-;m\n",
			want: entry(7, math.MaxUint32>>3, math.MaxUint64, math.MaxUint64, "-", "m", nil),
		},
		{name: "empty", raw: "", errHas: "no ';'"},
		{name: "newline only", raw: "\n", errHas: "no ';'"},
		{name: "garbage", raw: "\x00\xff garbage", errHas: "no ';'"},
		{name: "semicolon on a later line", raw: "6,1,2,-\n;m", errHas: "no ';'"},
		{name: "no header", raw: ";msg", errHas: "needs prio,seq,usec,flags"},
		{name: "missing flags", raw: "6,1,2;msg", errHas: "needs prio,seq,usec,flags"},
		{name: "empty flags", raw: "6,1,2,;msg", errHas: "needs prio,seq,usec,flags"},
		{name: "bad priority", raw: "x,1,2,-;m", errHas: "bad priority/facility"},
		{name: "empty priority", raw: ",1,2,-;m", errHas: "bad priority/facility"},
		{name: "signed priority", raw: "+6,1,2,-;m", errHas: "bad priority/facility"},
		{name: "priority overflow", raw: "4294967296,1,2,-;m", errHas: "bad priority/facility"},
		{name: "negative seq", raw: "6,-1,2,-;m", errHas: "bad sequence number"},
		{name: "space in seq", raw: "6, 1,2,-;m", errHas: "bad sequence number"},
		{name: "seq overflow", raw: "6,18446744073709551616,2,-;m", errHas: "bad sequence number"},
		{name: "fractional usec", raw: "6,1,2.5,-;m", errHas: "bad timestamp"},
		{name: "usec overflow", raw: "6,1,99999999999999999999,-;m", errHas: "bad timestamp"},
		{name: "stray line", raw: "6,1,2,-;m\nnot a dictionary line\n", errHas: "not a dictionary line"},
		{name: "dictionary without =", raw: "6,1,2,-;m\n NOEQUALS\n", errHas: "not KEY=value"},
		{name: "dictionary without key", raw: "6,1,2,-;m\n =v\n", errHas: "not KEY=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEntry([]byte(tt.raw))
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("ParseEntry(%q) error = %v, want one containing %q", tt.raw, err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEntry(%q): %v", tt.raw, err)
			}
			if !sameEntry(got, tt.want) {
				t.Errorf("ParseEntry(%q)\n got %+v\nwant %+v", tt.raw, got, tt.want)
			}
			rec, err := Parse([]byte(tt.raw))
			if err != nil || !sameEntry(Entry{Record: rec, Usec: got.Usec, Flags: got.Flags}, got) {
				t.Errorf("Parse(%q) = %+v, %v; want the Record of ParseEntry", tt.raw, rec, err)
			}
		})
	}
}

func TestParseErrorIsShort(t *testing.T) {
	_, err := Parse(bytes.Repeat([]byte("x"), 1<<16))
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error for 64 KiB of garbage: %v", err)
	}
}

func TestEntryAt(t *testing.T) {
	boot := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	e := Entry{Record: source.Record{Message: "m"}, Usec: 1_500_000}
	if got, want := e.At(boot).Time, boot.Add(1500*time.Millisecond); !got.Equal(want) {
		t.Errorf("At = %v, want %v", got, want)
	}
	e.Usec = math.MaxUint64
	if got := e.At(boot).Time; got.Before(boot) {
		t.Errorf("huge usec wrapped to %v, before boot", got)
	}
}

func TestReadText(t *testing.T) {
	in := strings.Join([]string{
		"6,10,1000000,-;first",
		" SUBSYSTEM=pci",
		" DEVICE=+pci:0000:00:01.0",
		"bare message\r",
		" KEY=after-bare",
		"",
		`3,20,2000000,-;second\x21`,
		" not a dictionary line",
		"  ? __schedule+0x1a/0x50",
		"4,30,3000000,-,caller=T9;third",
	}, "\n")
	want := []Entry{
		entry(6, 0, 10, 1000000, "-", "first", map[string]string{"SUBSYSTEM": "pci", "DEVICE": "+pci:0000:00:01.0"}),
		bare(11, 1000000, "bare message"),
		bare(12, 1000000, " KEY=after-bare"),
		entry(3, 0, 20, 2000000, "-", "second!", nil),
		bare(21, 2000000, " not a dictionary line"),
		bare(22, 2000000, "  ? __schedule+0x1a/0x50"),
		entry(4, 0, 30, 3000000, "-", "third", nil),
	}
	var got []Entry
	if err := ReadText(strings.NewReader(in), func(e Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if !sameEntry(got[i], want[i]) {
			t.Errorf("entry %d\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestReadTextBareOnly(t *testing.T) {
	var got []Entry
	err := ReadText(strings.NewReader(" leading space\nsecond\n"), func(e Entry) error { got = append(got, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{bare(0, 0, " leading space"), bare(1, 0, "second")}
	if len(got) != 2 || !sameEntry(got[0], want[0]) || !sameEntry(got[1], want[1]) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestReadTextStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := ReadText(strings.NewReader("a\nb\nc\n"), func(Entry) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("err = %v after %d calls, want stop after 1", err, n)
	}
}

func TestReadTextLineTooLong(t *testing.T) {
	err := ReadText(bytes.NewReader(bytes.Repeat([]byte("x"), 2<<20)), func(Entry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("err = %v, want a line-too-long error", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"6,339,5140900,-;NET: Registered protocol family 10\n",
		"12,341,3735882716,-;kmsgtest raw format\n",
		"3,1234,9999,-;usb 1-1: device descriptor read/64, error -71\n SUBSYSTEM=usb\n DEVICE=c189:1\n",
		"4,5,6,-;tab\\x09here back\\x5cslash\n",
		"6,7,8,-,caller=T1;msg\n",
		"0,1,2,c;NVRM: Xid (PCI:0000:00:1e): 79, GPU has fallen off the bus.\n",
		"4294967295,18446744073709551615,18446744073709551615,-;m\n",
		"6,1,2,-;m\n =v\n",
		"",
		";",
		"\\x",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := ParseEntry(raw)
		if err != nil {
			if e.Message != "" || e.Fields != nil {
				t.Fatalf("failed parse returned data: %+v", e)
			}
			return
		}
		if e.Kind != source.KindKmsg || e.Priority < 0 || e.Priority > 7 || e.Facility < 0 || e.Flags == "" {
			t.Fatalf("bad header fields: %+v", e)
		}
		// A raw newline ends the message line, so the only way to get one
		// into Message is the kernel's own escape for it.
		if strings.Contains(e.Message, "\n") && !bytes.Contains(bytes.ToLower(raw), []byte(`\x0a`)) {
			t.Fatalf("message %q contains a newline not escaped in %q", e.Message, raw)
		}
		if len(e.Message) > len(raw) {
			t.Fatalf("message longer than the input")
		}
		if e.Fields != nil && len(e.Fields) == 0 {
			t.Fatalf("empty non-nil Fields")
		}
		for k := range e.Fields {
			if k == "" {
				t.Fatalf("empty dictionary key")
			}
		}
		// Whatever parses as a record must also come through ReadText as
		// the same record when it is a single line.
		if !bytes.ContainsAny(raw, "\n\r") {
			var got []Entry
			if err := ReadText(bytes.NewReader(raw), func(e Entry) error { got = append(got, e); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !sameEntry(got[0], e) {
				t.Fatalf("ReadText gave %+v, Parse gave %+v", got, e)
			}
		}
	})
}

var benchSink source.Record

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct{ name, raw string }{
		{"plain", "4,1234,3735882716,-;NVRM: Xid (PCI:0000:00:1e): 79, pid=1234, name=python, GPU has fallen off the bus.\n"},
		{"dict", "3,1234,9999,-;usb 1-1: device descriptor read/64, error -71\n SUBSYSTEM=usb\n DEVICE=c189:1\n"},
		{"escaped", "4,5,6,-;tab\\x09here back\\x5cslash and some more text to copy\n"},
	} {
		raw := []byte(bc.raw)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				r, err := Parse(raw)
				if err != nil {
					b.Fatal(err)
				}
				benchSink = r
			}
		})
	}
}

func entry(prio, fac int, seq, usec uint64, flags, msg string, fields map[string]string) Entry {
	return Entry{
		Record: source.Record{Kind: source.KindKmsg, Message: msg, Priority: prio, Facility: fac, Seq: seq, Fields: fields},
		Usec:   usec,
		Flags:  flags,
	}
}

func bare(seq, usec uint64, msg string) Entry {
	return Entry{Record: source.Record{Kind: source.KindKmsg, Message: msg, Priority: -1, Facility: -1, Seq: seq}, Usec: usec}
}

func sameEntry(a, b Entry) bool {
	return a.Kind == b.Kind && a.Message == b.Message && a.Priority == b.Priority &&
		a.Facility == b.Facility && a.Seq == b.Seq && a.Time.Equal(b.Time) &&
		(a.Fields == nil) == (b.Fields == nil) && maps.Equal(a.Fields, b.Fields) &&
		a.Usec == b.Usec && a.Flags == b.Flags && a.Identifier == b.Identifier &&
		a.Unit == b.Unit && a.Path == b.Path
}
