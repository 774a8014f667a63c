package journal

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/source/journal/journaltest"
)

// BenchmarkIngest reads a journal of NODEHEALTHD_JOURNAL_BENCH_ENTRIES
// (default 1,000,000) synthetic entries, all matching, through the Source
// from first start to the last entry, and reports entries/s: as shipped
// (one-pass field reader) and through sdjournal's per-field calls only. The
// journal is built once, before timing (about 40 s for 1M on 2 cores).
//
//	go test -run '^$' -bench Ingest -benchtime 3x ./internal/source/journal/
func BenchmarkIngest(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("NODEHEALTHD_JOURNAL_BENCH_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("NODEHEALTHD_JOURNAL_BENCH_ENTRIES=%q: want a positive number", v)
		}
	}
	dir := b.TempDir()
	begin := time.Now()
	journaltest.WriteJournalFunc(b, dir, n, journaltest.Synthetic)
	b.Logf("wrote %d entries in %v", n, time.Since(begin).Round(time.Millisecond))

	cfg := Config{
		Dir:          dir,
		Identifiers:  []string{"kubelet", "systemd"},
		Units:        []string{"containerd.service"},
		PollInterval: 10 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, mode := range []struct {
		name string
		fast bool
	}{{"one-pass", true}, {"sdjournal", false}} {
		b.Run(mode.name, func(b *testing.B) {
			defer func(f bool) { useFastFields = f }(useFastFields)
			useFastFields = mode.fast
			for b.Loop() {
				if got := ingest(b, cfg, n); got != n {
					b.Fatalf("read %d entries, want %d", got, n)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// ingest runs a Source until it has delivered n records and returns how
// many it delivered.
func ingest(b *testing.B, cfg Config, n int) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan source.Batch, 16)
	done := make(chan error, 1)
	go func() { done <- New(cfg).Run(ctx, nil, out) }()
	got := 0
	for got < n {
		select {
		case bt := <-out:
			got += len(bt.Records)
		case err := <-done:
			b.Fatalf("Run returned %v after %d records", err, got)
		}
	}
	cancel()
	<-done
	return got
}
