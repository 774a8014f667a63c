// Package journal reads the systemd journal through sd-journal (libsystemd,
// loaded at run time by go-systemd's sdjournal), keeps only the entries of
// the identifiers and units the rules ask for, and resumes from the cursor of
// the last processed entry. On first start it reads the current boot from its
// beginning, so failures logged during boot are not missed.
package journal

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/sdjournal"

	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

// name is both the source name and the key of its position.
const name = "journal"

// ownIdentifier and ownField mark the daemon's own journal entries. Reading
// them back would let a finding's log line match a rule and feed itself.
const (
	ownIdentifier = "nodehealthd"
	ownField      = "NODEHEALTH_REASON"
)

// maxWaitSlice bounds one sd_journal_wait call. Wait cannot be interrupted,
// so this is how long a cancelled Run may take to notice.
const maxWaitSlice = 200 * time.Millisecond

// minPoll is the least time between two reads of an idle journal. Wait
// returns APPEND for any write in the watched directory, even to unrelated
// files, and an error for some handles; without a floor the loop could spin.
const minPoll = 10 * time.Millisecond

// Config configures a Source.
type Config struct {
	// Root is the host root prefix. Default "/": the local system journal.
	// Any other root reads the first of Root/var/log/journal and
	// Root/run/log/journal that holds journal files.
	Root string
	// Dir, when set, is read instead: a journal directory or a single
	// journal file (tests, captured hosts).
	Dir string
	// Identifiers (SYSLOG_IDENTIFIER) and Units (_SYSTEMD_UNIT) select the
	// entries to read; an entry matching any of them is read. With neither,
	// Run returns nil at once without opening the journal.
	Identifiers []string
	Units       []string
	// BootTime is when the current boot started. Without a saved cursor Run
	// starts at the first entry at or after it; zero reads the whole journal.
	BootTime time.Time
	// MaxBatch caps the entries per batch. Default 1024.
	MaxBatch int
	// PollInterval is the longest an idle Run waits before looking for new
	// entries again: sd-journal reports changes (or asks to be called
	// earlier, for files it cannot watch), so this is only a safety net.
	// Default 1m.
	PollInterval time.Duration
	// Logger receives notices such as a vacuumed cursor. Default slog.Default().
	Logger *slog.Logger
}

// Source reads the systemd journal. It implements source.Source.
type Source struct {
	cfg Config
}

var _ source.Source = (*Source)(nil)

// New returns a Source for cfg, with defaults filled in.
func New(cfg Config) *Source {
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1024
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Source{cfg: cfg}
}

// Name returns "journal".
func (s *Source) Name() string { return name }

// Run reads matching entries after start["journal"] (or from BootTime on
// first start) and follows the journal until ctx ends, then returns nil. It
// returns an error wrapping source.ErrUnavailable when there is no journal.
// Without identifiers and units it returns nil at once: no rule reads the
// journal, and opening it would only report a missing journal for nothing.
func (s *Source) Run(ctx context.Context, start map[string]source.Position, out chan<- source.Batch) error {
	if len(s.cfg.Identifiers)+len(s.cfg.Units) == 0 {
		return nil
	}
	j, err := s.open()
	if err != nil {
		return err
	}
	defer j.Close()
	// libsystemd may return compressed fields cut at its 64 KiB default;
	// a message cut there would be matched without being counted. One
	// byte more than source.MaxMessageBytes tells a cut message from one
	// that fits.
	if err := j.SetDataThreshold(uint64(len("MESSAGE=") + source.MaxMessageBytes + 1)); err != nil {
		s.cfg.Logger.Debug("cannot set the journal data threshold; messages may be cut at 64 KiB", "err", err)
	}

	cursor := start[name].Cursor
	st, err := s.seek(j, cursor)
	if err != nil {
		return err
	}
	r := reader{
		j:      j,
		fast:   newFastFields(j),
		fdw:    newFDWaiter(j),
		cfg:    &s.cfg,
		out:    out,
		cursor: cursor,
		skip:   st.skip,
		lost:   st.lost,
	}
	if r.fdw != nil {
		defer r.fdw.close()
	}
	return r.run(ctx)
}

// open opens the configured journal. Every way of not finding one wraps
// source.ErrUnavailable: sd_journal_open succeeds on a host without any
// journal files and would then wait forever, so files are looked for first.
func (s *Source) open() (*sdjournal.Journal, error) {
	var (
		j   *sdjournal.Journal
		err error
	)
	switch {
	case s.cfg.Dir != "":
		dir, aerr := filepath.Abs(s.cfg.Dir)
		if aerr != nil {
			return nil, fmt.Errorf("journal %s: %w: %w", s.cfg.Dir, source.ErrUnavailable, aerr)
		}
		fi, serr := os.Stat(dir)
		switch {
		case serr != nil:
			return nil, fmt.Errorf("journal %s: %w: %w", dir, source.ErrUnavailable, serr)
		case fi.Mode().IsRegular():
			// An absolute path: with a bare file name sd_journal_wait
			// fails with EDESTADDRREQ.
			j, err = sdjournal.NewJournalFromFiles(dir)
		case !hasJournalFiles(dir):
			return nil, fmt.Errorf("journal %s: %w: no journal files", dir, source.ErrUnavailable)
		default:
			j, err = sdjournal.NewJournalFromDir(dir)
		}
	default:
		dir := ""
		for _, d := range []string{"/var/log/journal", "/run/log/journal"} {
			if d = host.Path(s.cfg.Root, d); hasJournalFiles(d) {
				dir = d
				break
			}
		}
		switch {
		case dir == "":
			return nil, fmt.Errorf("journal under %s: %w: no journal files in /var/log/journal or /run/log/journal", s.cfg.Root, source.ErrUnavailable)
		case s.cfg.Root == "/":
			// The system journal merges /run and /var and follows
			// journald's flush from one to the other.
			j, err = sdjournal.NewJournal()
		default:
			j, err = sdjournal.NewJournalFromDir(dir)
		}
	}
	if err != nil {
		// Typically libsystemd.so.0 missing from the image.
		return nil, fmt.Errorf("journal: %w: %w", source.ErrUnavailable, err)
	}
	return j, nil
}

// hasJournalFiles reports whether dir or one of its machine-ID
// subdirectories holds a journal file, which is where journald and
// sd_journal_open_directory look.
func hasJournalFiles(dir string) bool {
	for _, pat := range []string{"*.journal", "*/*.journal"} {
		if m, _ := filepath.Glob(filepath.Join(dir, pat)); len(m) > 0 {
			return true
		}
	}
	return false
}

// pending is what the reader must act on at its first entry or batch.
type pending struct {
	skip string // cursor of an entry to skip if it is the first one read
	lost uint64 // entries known gone before the first one read
}

// startAt says where to position the journal once the matches are in place.
type startAt int

const (
	atBoot   startAt = iota // first start
	atCursor                // at the saved cursor, or where it would be
	atHead                  // the oldest entry
)

// seek positions j for the first Next after cursor ("" on first start) and
// installs the matches.
func (s *Source) seek(j *sdjournal.Journal, cursor string) (pending, error) {
	var st pending
	where := atBoot
	if cursor != "" {
		var err error
		if where, st, err = s.locate(j, cursor); err != nil {
			return st, err
		}
	}
	if err := addMatches(j, s.cfg.Identifiers, s.cfg.Units); err != nil {
		return st, err
	}
	var err error
	switch {
	case where == atCursor:
		err = j.SeekCursor(cursor)
	case where == atHead || s.cfg.BootTime.IsZero():
		err = j.SeekHead()
	default:
		err = j.SeekRealtimeUsec(uint64(s.cfg.BootTime.UnixMicro()))
	}
	if err != nil {
		return st, fmt.Errorf("journal: %w", err)
	}
	return st, nil
}

// locate decides where to resume after a saved cursor. It runs before the
// matches are added: with matches, Next after SeekCursor lands on the first
// matching entry, so TestCursor would also fail for an entry that exists but
// no longer matches (the rules changed), and that is no gap. Without
// matches, SeekCursor+Next+TestCursor tells exactly whether the entry is
// still there. When it is gone, the oldest entry tells whether it was
// vacuumed (the oldest entry is past the cursor) and how many entries went
// with it (same sequence number ID: the difference of sequence numbers).
// Realtime is compared only when the IDs differ (a new journal), because
// the wall clock can jump.
func (s *Source) locate(j *sdjournal.Journal, cursor string) (startAt, pending, error) {
	saved, err := parseCursor(cursor)
	if err == nil {
		err = j.SeekCursor(cursor)
	}
	if err != nil {
		s.cfg.Logger.Warn("unusable journal cursor; reading the current boot again", "cursor", cursor, "err", err)
		return atBoot, pending{}, nil
	}
	if present(j, cursor) {
		return atCursor, pending{skip: cursor}, nil
	}
	oldest, ok, err := oldestEntry(j)
	if err != nil {
		return atBoot, pending{}, err
	}
	if vacuumed, lost := gap(saved, oldest, ok); vacuumed {
		if lost > 0 {
			s.cfg.Logger.Warn("journal entries after the saved cursor were vacuumed; resuming from the oldest entry", "lost", lost)
		}
		return atHead, pending{lost: lost}, nil
	}
	// The entry vanished but not by vacuum (a corrupt or replaced file, a
	// cursor from elsewhere): sd-journal places a missing cursor by its
	// sequence number, or else by time, so reading resumes near it.
	s.cfg.Logger.Warn("journal cursor not found; resuming near its position", "cursor", cursor)
	return atCursor, pending{skip: cursor}, nil
}

// present reports whether cursor's entry exists; j has been sought to it.
func present(j *sdjournal.Journal, cursor string) bool {
	n, err := j.Next()
	return err == nil && n == 1 && j.TestCursor(cursor) == nil
}

// oldestEntry returns the parsed cursor of the journal's oldest entry, and
// false for an empty journal.
func oldestEntry(j *sdjournal.Journal) (cursorInfo, bool, error) {
	if err := j.SeekHead(); err != nil {
		return cursorInfo{}, false, fmt.Errorf("journal: %w", err)
	}
	n, err := j.Next()
	if err != nil {
		return cursorInfo{}, false, fmt.Errorf("journal: %w", err)
	}
	if n == 0 {
		return cursorInfo{}, false, nil
	}
	c, err := j.GetCursor()
	if err != nil {
		return cursorInfo{}, false, fmt.Errorf("journal: %w", err)
	}
	ci, err := parseCursor(c)
	return ci, err == nil, nil
}

// gap decides, for a saved cursor whose entry is gone, whether the journal
// was vacuumed past it, and how many entries were lost with it. lost counts
// all entries, not only matching ones: sequence numbers are journal-wide.
func gap(saved, oldest cursorInfo, haveOldest bool) (vacuumed bool, lost uint64) {
	switch {
	case !haveOldest:
		// Empty journal: everything after the cursor is gone.
		return true, 1
	case saved.seqnumID == oldest.seqnumID:
		if oldest.seqnum <= saved.seqnum {
			return false, 0
		}
		return true, oldest.seqnum - saved.seqnum - 1
	case oldest.realtime > saved.realtime:
		return true, 1
	default:
		return false, 0
	}
}

// addMatches makes j return entries whose SYSLOG_IDENTIFIER is any of ids
// OR whose _SYSTEMD_UNIT is any of units. sd-journal ORs matches on the same
// field but ANDs different fields, hence the disjunction between the two.
func addMatches(j *sdjournal.Journal, ids, units []string) error {
	add := func(field string, values []string) error {
		for _, v := range values {
			if err := j.AddMatch(field + "=" + v); err != nil {
				return fmt.Errorf("journal match %s=%s: %w", field, v, err)
			}
		}
		return nil
	}
	if err := add("SYSLOG_IDENTIFIER", ids); err != nil {
		return err
	}
	if len(ids) > 0 && len(units) > 0 {
		if err := j.AddDisjunction(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	return add("_SYSTEMD_UNIT", units)
}

// cursorInfo is what a cursor says about its entry. A cursor reads
// "s=<seqnum ID>;i=<seqnum>;b=<boot ID>;m=<monotonic>;t=<realtime>;x=<hash>",
// numbers in hex; libsystemd documents it as opaque, but its format has been
// stable since 2012 and only the gap estimate depends on it.
type cursorInfo struct {
	seqnumID string
	seqnum   uint64
	realtime uint64
}

func parseCursor(c string) (cursorInfo, error) {
	var ci cursorInfo
	var haveSeq bool
	for f := range strings.SplitSeq(c, ";") {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "s":
			ci.seqnumID = v
		case "i":
			ci.seqnum, err = strconv.ParseUint(v, 16, 64)
			haveSeq = err == nil
		case "t":
			ci.realtime, err = strconv.ParseUint(v, 16, 64)
		}
		if err != nil {
			return ci, fmt.Errorf("journal cursor %q: field %s: %w", c, k, err)
		}
	}
	if ci.seqnumID == "" || !haveSeq {
		return ci, fmt.Errorf("journal cursor %q: no s= or i= field", c)
	}
	return ci, nil
}
