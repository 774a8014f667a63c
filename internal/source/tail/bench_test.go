package tail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/source"
)

// BenchmarkRead reads a file from its beginning to its end through the
// Source and reports lines/s and MB/s: "short" is 200,000 ipamd-like lines
// of about 170 bytes; "long-line" is the same with one 1.5 MiB line in
// front, whose buffer must not make the short lines after it cost more
// (compare B/op with "short").
//
//	go test -run '^$' -bench Read -benchmem ./internal/source/tail/
func BenchmarkRead(b *testing.B) {
	const lines = 200_000
	var sb strings.Builder
	for k := range lines {
		fmt.Fprintf(&sb, `{"level":"debug","ts":"2026-03-01T10:00:00.000Z","caller":"ipamd/ipamd.go:%d","msg":"IP pool stats: total IPs/prefixes = 28, used IPs/prefixes = %d"}`+"\n", k%900, k%28)
	}
	short := sb.String()
	for _, c := range []struct {
		name  string
		text  string
		lines int
	}{
		{"short", short, lines},
		{"long-line", strings.Repeat("x", 3<<19) + "\n" + short, lines + 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			root := b.TempDir()
			full := filepath.Join(root, cronLog)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(c.text), 0o644); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(c.text)))
			b.ReportAllocs()
			for b.Loop() {
				if got := readAll(b, root, int64(len(c.text))); got != c.lines {
					b.Fatalf("read %d lines, want %d", got, c.lines)
				}
			}
			b.ReportMetric(float64(c.lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// readAll runs a Source over cronLog under root until its position reaches
// size and returns how many lines it delivered.
func readAll(b *testing.B, root string, size int64) int {
	s, err := New(Config{Root: root, Paths: []string{cronLog}, NewFilesFromStart: past})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan source.Batch, 16)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, nil, out) }()
	n := 0
	for {
		select {
		case bt := <-out:
			n += len(bt.Records)
			if bt.Position.Offset == size {
				cancel()
				<-done
				return n
			}
		case err := <-done:
			b.Fatalf("Run returned %v after %d lines", err, n)
		}
	}
}
