package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/source/journal/journaltest"
)

// BenchmarkJournalIngestEndToEnd measures the whole pipeline on a real
// journal file: sd-journal reading, the full built-in catalogue, findings
// and state commits. Size with NODEHEALTHD_JOURNAL_BENCH_ENTRIES (default
// 1,000,000; the file is built once, before timing).
func BenchmarkJournalIngestEndToEnd(b *testing.B) {
	journaltest.Require(b)
	n := 1_000_000
	if v := os.Getenv("NODEHEALTHD_JOURNAL_BENCH_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	root := b.TempDir()
	boot := time.Now().Add(-2 * time.Hour)
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	write("proc/stat", fmt.Sprintf("btime %d\n", boot.Unix()))
	write("proc/sys/kernel/random/boot_id", "bench\n")
	idents := []string{"kubelet", "containerd", "systemd", "kubelet", "kubelet"}
	jdir := filepath.Join(root, "var/log/journal")
	os.MkdirAll(jdir, 0o755)
	journaltest.WriteJournalFunc(b, jdir, n, func(i int) journaltest.Entry {
		e := journaltest.Synthetic(i)
		e.Time = boot.Add(time.Minute + time.Duration(i)*time.Microsecond)
		// Every entry is read (it matches the catalogue's identifiers), and
		// one in 1000 is a finding.
		e.Identifier = idents[i%len(idents)]
		if i%1000 == 0 {
			e.Identifier = "kubelet"
			e.Message = fmt.Sprintf(`E1125 10:00:00.000000 2345 kubelet.go:1] fork/exec /usr/bin/runc-%d: resource temporarily unavailable`, i)
		}
		return e
	})
	b.ResetTimer()
	for b.Loop() {
		var got atomic.Int64
		done := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		counter := publish.Func(func(u publish.Update) {
			if got.Add(int64(u.Stats.Records["journal"])) >= int64(n) {
				select {
				case <-done:
				default:
					close(done)
				}
			}
		})
		errc := make(chan error, 1)
		start := time.Now()
		go func() {
			errc <- Run(ctx, Options{Root: root, StateDir: filepath.Join(b.TempDir(), "state"), ConfigPath: filepath.Join(root, "none.yaml"),
				RulesDir: filepath.Join(root, "rules.d"), Logger: slog.New(slog.DiscardHandler), Publishers: []publish.Publisher{counter}})
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("only %d of %d entries after 5 minutes", got.Load(), n)
		}
		took := time.Since(start)
		cancel()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n)/took.Seconds(), "entries/s")
	}
}
