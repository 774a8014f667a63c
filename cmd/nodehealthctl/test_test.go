package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/rules"
	"github.com/nodehealthd/nodehealthd/internal/ruleset"
	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/source/tail"
)

// Long lines give `nodehealthctl test` the findings the daemon's tail
// source gives: a token at the end of a 100 KiB line and within the first
// MaxMessageBytes of a 1.5 MiB line is found, one beyond that is not, and
// nothing aborts.
func TestLongLinesSameAsDaemon(t *testing.T) {
	const limit = source.MaxMessageBytes
	const logPath = "/var/log/app.log"
	dir := t.TempDir()
	rule := `rules:
  - name: Token
    condition: KernelReady
    reason: Token
    severity: Warning
    source: file
    paths: [` + logPath + `]
    patterns: ['TOKEN-(?P<n>[A-Z])']
    key: '${n}'
    message: 'token ${n}'
`
	if err := os.WriteFile(filepath.Join(dir, "token.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	none := filepath.Join(dir, "none.yaml")
	in := strings.Join([]string{
		strings.Repeat("a", 100<<10) + " TOKEN-A",
		strings.Repeat("b", limit-len("TOKEN-B")) + "TOKEN-B" + strings.Repeat("b", limit/2),
		strings.Repeat("c", limit+limit/2) + " TOKEN-C",
		"short TOKEN-D",
		strings.Repeat("e", 3*limit) + " TOKEN-E",
	}, "\n") + "\n"
	want := []string{"A", "B", "D"}

	rc, out, errs := ctl(t, in, "test", "--source", "file", "--path", logPath, "--rules", dir, "--config", none, "-o", "json")
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, errs)
	}
	var fromTest []string
	for l := range strings.Lines(out) {
		var r testResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
		fromTest = append(fromTest, r.Key)
	}
	if !slices.Equal(fromTest, want) {
		t.Errorf("nodehealthctl test found tokens %q, want %q", fromTest, want)
	}
	for _, n := range []string{"line 2 ", "line 3 ", "line 5 "} {
		if !strings.Contains(errs, n) {
			t.Errorf("stderr does not say that %sis cut: %q", n, errs)
		}
	}

	fromDaemon, truncated := daemonFindings(t, dir, none, logPath, in)
	if !slices.Equal(fromDaemon, fromTest) {
		t.Errorf("the daemon found tokens %q, nodehealthctl test %q", fromDaemon, fromTest)
	}
	if truncated != 3 {
		t.Errorf("the tail source counted %d lines truncated, want 3", truncated)
	}
}

// daemonFindings follows a file holding text with the daemon's tail source,
// rules and policy stage, and returns the keys of the findings and the lines counted as
// truncated.
func daemonFindings(t *testing.T, rulesDir, configPath, logPath, text string) (keys []string, truncated uint64) {
	t.Helper()
	_, set, err := ruleset.Load(configPath, rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	engine, stage := rules.NewEngine(set), set.Policy().Stage("", nil)
	root := t.TempDir()
	full := filepath.Join(root, logPath)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := tail.New(tail.Config{Root: root, Paths: []string{logPath}, Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make(chan source.Batch)
	go s.Run(ctx, nil, out)
	for {
		select {
		case b := <-out:
			truncated += b.Truncated
			for i := range b.Records {
				for _, o := range engine.Process(&b.Records[i], nil) {
					if f, ok := stage.Apply(o); ok {
						keys = append(keys, f.Key)
					}
				}
			}
			if b.Position.Offset == int64(len(text)) {
				return keys, truncated
			}
		case <-ctx.Done():
			t.Fatalf("the tail source did not reach the end of the file; found %q so far", keys)
		}
	}
}
