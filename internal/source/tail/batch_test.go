package tail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/source"
)

// The memory of a batch is reused only once its receiver gives it back: a
// batch still held keeps its text while later ones arrive, and a recycled
// one's memory carries the next lines correctly. Lines of every length are
// mixed in, from empty to longer than the text buffer of a batch.
func TestBatchMemoryIsReusedOnlyWhenRecycled(t *testing.T) {
	var lines []string
	for i := range 20000 {
		switch {
		case i%997 == 0:
			lines = append(lines, strings.Repeat(fmt.Sprint(i%10), source.TextBytes+i%100))
		case i%301 == 0:
			lines = append(lines, strings.Repeat("y", 5000))
		case i%7 == 0:
			lines = append(lines, "")
		default:
			lines = append(lines, fmt.Sprintf("line %d %s", i, strings.Repeat("x", i%200)))
		}
	}
	text := strings.Join(lines, "\n") + "\n"
	root := t.TempDir()
	full := filepath.Join(root, cronLog)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Root: root, Paths: []string{cronLog}, NewFilesFromStart: past, MaxBatch: 64})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan source.Batch, 2)
	go func() { _ = s.Run(ctx, nil, out) }()

	// Two batches are held at any time, as in the pipeline's queue, and
	// checked again when given back.
	var held []source.Batch
	check := func(b source.Batch, first int) {
		for j, r := range b.Records {
			if r.Message != lines[first+j] {
				t.Fatalf("line %d: %d bytes %.20q…, want %d bytes %.20q…", first+j, len(r.Message), r.Message, len(lines[first+j]), lines[first+j])
			}
		}
	}
	var firsts []int
	n := 0
	deadline := time.After(time.Minute)
	for n < len(lines) {
		select {
		case b := <-out:
			if len(b.Records) == 0 {
				continue
			}
			if b.Recycle == nil {
				t.Fatal("a batch with records has no Recycle")
			}
			check(b, n)
			held, firsts = append(held, b), append(firsts, n)
			n += len(b.Records)
			if len(held) > 2 {
				check(held[0], firsts[0])
				held[0].Recycle()
				held, firsts = held[1:], firsts[1:]
			}
		case <-deadline:
			t.Fatalf("read %d of %d lines in a minute", n, len(lines))
		}
	}
	for i, b := range held {
		check(b, firsts[i])
	}
}
