// Package journaltest writes real journal files for tests and benchmarks by
// piping the journal export format into systemd-journal-remote, so that
// readers are exercised against the same on-disk format journald produces.
package journaltest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FileName is the name of the journal file WriteJournal creates in its
// directory; journal-remote insists on the .journal suffix.
const FileName = "test.journal"

// remotePaths are where Debian (and merged-/usr distributions) install
// journal-remote; it is not on $PATH.
var remotePaths = []string{"/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote"}

// Entry is one journal entry to write.
type Entry struct {
	// Time becomes __REALTIME_TIMESTAMP, the only field journal-remote
	// requires. It must not be zero.
	Time       time.Time
	Message    string // MESSAGE, omitted when empty
	Identifier string // SYSLOG_IDENTIFIER, omitted when empty
	Unit       string // _SYSTEMD_UNIT, omitted when empty
	// Fields holds any other fields (PRIORITY, NODEHEALTH_REASON, ...).
	// Values may contain newlines or arbitrary bytes.
	Fields map[string]string
}

// Remote returns the path of systemd-journal-remote, or "" if it is not
// installed.
func Remote() string {
	for _, p := range remotePaths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("systemd-journal-remote"); err == nil {
		return p
	}
	return ""
}

// Require skips tb when systemd-journal-remote is not installed.
func Require(tb testing.TB) {
	tb.Helper()
	if Remote() == "" {
		tb.Skip("systemd-journal-remote not installed (apt-get install systemd-journal-remote); cannot build journal files")
	}
}

// WriteJournal appends entries to dir/test.journal, creating it if needed,
// and returns the file's absolute path. Keep each journal in its own
// directory: sd-journal watches the whole directory, so unrelated writes
// there wake readers.
func WriteJournal(tb testing.TB, dir string, entries []Entry) string {
	tb.Helper()
	return WriteJournalFunc(tb, dir, len(entries), func(i int) Entry { return entries[i] })
}

// WriteJournalFunc is WriteJournal for n entries produced by entry(i), so that
// large journals need not be held in memory.
func WriteJournalFunc(tb testing.TB, dir string, n int, entry func(i int) Entry) string {
	tb.Helper()
	Require(tb)
	dir, err := filepath.Abs(dir)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	cmd := exec.Command(Remote(), "-o", path, "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start journal-remote: %v", err)
	}
	werr := writeExport(stdin, n, entry)
	if cerr := stdin.Close(); werr == nil {
		werr = cerr
	}
	if err := cmd.Wait(); err != nil || werr != nil {
		tb.Fatalf("journal-remote -o %s: write: %v, exit: %v\n%s", path, werr, err, stderr.String())
	}
	// journal-remote drops invalid entries with only a message on stderr.
	if want := fmt.Sprintf("writing %d entries", n); !strings.Contains(stderr.String(), want) {
		tb.Fatalf("journal-remote -o %s: expected %q in its output:\n%s", path, want, stderr.String())
	}
	return path
}

func writeExport(w io.Writer, n int, entry func(i int) Entry) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	var keys []string
	for i := range n {
		e := entry(i)
		if e.Time.IsZero() {
			return fmt.Errorf("entry %d has no Time", i)
		}
		bw.WriteString("__REALTIME_TIMESTAMP=")
		bw.WriteString(strconv.FormatInt(e.Time.UnixMicro(), 10))
		bw.WriteByte('\n')
		writeField(bw, "MESSAGE", e.Message)
		writeField(bw, "SYSLOG_IDENTIFIER", e.Identifier)
		writeField(bw, "_SYSTEMD_UNIT", e.Unit)
		keys = keys[:0]
		for k := range e.Fields {
			keys = append(keys, k)
		}
		slices.Sort(keys) // deterministic files for identical input
		for _, k := range keys {
			writeField(bw, k, e.Fields[k])
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// writeField writes one field in the export format. Values that the text
// form cannot carry (newlines, invalid UTF-8) use the binary form:
// KEY\n<little-endian uint64 length><bytes>\n.
func writeField(w *bufio.Writer, key, value string) {
	if value == "" {
		return
	}
	w.WriteString(key)
	if !strings.ContainsRune(value, '\n') && utf8.ValidString(value) {
		w.WriteByte('=')
		w.WriteString(value)
		w.WriteByte('\n')
		return
	}
	w.WriteByte('\n')
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(value)))
	w.Write(n[:])
	w.WriteString(value)
	w.WriteByte('\n')
}

// Journal file header layout (systemd's src/libsystemd/sd-journal/journal-def.h).
const (
	headerSignature    = "LPKSHHRH"
	offSeqnumID        = 72
	offHeaderSize      = 88
	offTailEntrySeqnum = 160
	minHeaderForSeqnum = offTailEntrySeqnum + 8
)

// ContinueSeqnum creates dir/test.journal without entries, set up so that the
// next entry written to it (WriteJournal on dir) gets sequence number last+1
// under the sequence number ID seqnumID (32 hex digits, the s= field of a
// cursor). That is what a journal looks like after its older files were
// vacuumed: the surviving file continues the numbering of the deleted ones.
// journal-remote always starts a new file at 1 with a random ID, so the
// header is patched.
func ContinueSeqnum(tb testing.TB, dir, seqnumID string, last uint64) string {
	tb.Helper()
	id, err := hexID(seqnumID)
	if err != nil {
		tb.Fatal(err)
	}
	path := WriteJournal(tb, dir, nil)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, minHeaderForSeqnum)
	if _, err := io.ReadFull(f, hdr); err != nil {
		tb.Fatal(err)
	}
	if string(hdr[:len(headerSignature)]) != headerSignature ||
		binary.LittleEndian.Uint64(hdr[offHeaderSize:]) < minHeaderForSeqnum {
		tb.Fatalf("%s: not a journal file header this helper understands", path)
	}
	copy(hdr[offSeqnumID:], id)
	binary.LittleEndian.PutUint64(hdr[offTailEntrySeqnum:], last)
	if _, err := f.WriteAt(hdr[offSeqnumID:], offSeqnumID); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

func hexID(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return nil, fmt.Errorf("seqnum ID %q: want 32 hex digits", s)
	}
	return b, nil
}

// syntheticBase is the time of Synthetic(0).
var syntheticBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Synthetic returns the i-th entry of a busy node's journal, for benchmarks:
// kubelet, containerd (by unit) and systemd lines of typical length, one
// millisecond apart, every message distinct as in real logs. Use it with
// WriteJournalFunc.
func Synthetic(i int) Entry {
	e := Entry{Time: syntheticBase.Add(time.Duration(i) * time.Millisecond)}
	switch i % 4 {
	case 0, 1:
		e.Identifier, e.Unit = "kubelet", "kubelet.service"
		e.Message = fmt.Sprintf(`I0101 00:00:00.%06d    2841 kubelet.go:2410] "SyncLoop (PLEG): event for pod" pod="kube-system/aws-node-%05x" event={"ID":"%08x","Type":"ContainerStarted"}`, i%1000000, i, uint32(i)*2654435761)
	case 2:
		e.Identifier, e.Unit = "containerd", "containerd.service"
		e.Message = fmt.Sprintf(`time="2026-01-01T00:00:00.%06dZ" level=info msg="StartContainer for \"%016x\" returns successfully"`, i%1000000, uint64(i)*11400714819323198485)
	default:
		e.Identifier, e.Unit = "systemd", "init.scope"
		e.Message = fmt.Sprintf("Started cri-containerd-%016x.scope - libcontainer container %x.", uint64(i)*2654435761, i)
	}
	// The fields journald adds to every entry: sd-journal looks fields up by
	// scanning them, so their number matters for read speed.
	comm := e.Identifier
	e.Fields = map[string]string{
		"PRIORITY":               "6",
		"SYSLOG_FACILITY":        "3",
		"_TRANSPORT":             "stdout",
		"_STREAM_ID":             "5b2ad3e0c8e14e6f9b1d2a6c7e8f9a0" + comm[:1],
		"_PID":                   strconv.Itoa(1000 + i%4),
		"_UID":                   "0",
		"_GID":                   "0",
		"_COMM":                  comm,
		"_EXE":                   "/usr/bin/" + comm,
		"_CMDLINE":               "/usr/bin/" + comm + " --config=/etc/" + comm + "/config.yaml",
		"_CAP_EFFECTIVE":         "1ffffffffff",
		"_SYSTEMD_CGROUP":        "/system.slice/" + e.Unit,
		"_SYSTEMD_SLICE":         "system.slice",
		"_SYSTEMD_INVOCATION_ID": "0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5" + comm[:1],
		"_BOOT_ID":               "8d5e2f7a9c3b4e1f8a6d0c2b4e6f8a0d",
		"_MACHINE_ID":            "ec2a1b2c3d4e5f60718293a4b5c6d7e8",
		"_HOSTNAME":              "ip-10-0-1-23.ec2.internal",
	}
	return e
}
