// Package logging builds the daemon's slog logger: structured entries
// through the native journal protocol when systemd started us
// (JOURNAL_STREAM), coloured human output on a terminal (tint), plain
// key=value output otherwise.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	"github.com/mattn/go-isatty"

	"github.com/nodehealthd/nodehealthd/internal/outqueue"
	"github.com/nodehealthd/nodehealthd/internal/publish/journald"
)

// ParseLevel accepts debug, info, warn and error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
	}
	return l, nil
}

// New returns a logger at level writing to the journal, or else to w.
// Only a terminal is written directly: the journal and anything else (a
// pipe to a container's log collector) are written from a queue, so that
// a reader that stalls stalls no goroutine that logs (internal/outqueue).
func New(w io.Writer, level slog.Level) *slog.Logger {
	if journald.UnderJournal() {
		return slog.New(journald.NewHandler(level))
	}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		return slog.New(tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly}))
	}
	return slog.New(slog.NewTextHandler(outqueue.Writer("stderr", w, outqueue.TellOn(w, "stderr")), &slog.HandlerOptions{Level: level}))
}
