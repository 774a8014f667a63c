package main

import (
	"io"
	"log/slog"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/rules"
)

// commentedKey is a commented-out setting of the shipped config.yaml:
// "#key:" or "#  key:", where prose comments are "# Text".
var commentedKey = regexp.MustCompile(`(?m)^#([A-Za-z]|  )`)

// The packaged config.yaml is all comments, its settings commented out so
// that the file is the default. An operator uncommenting them must get a
// valid file: strictly parsed, compiling with the catalogue, naming real
// probes.
func TestShippedConfigUncommentedIsValid(t *testing.T) {
	b, err := os.ReadFile("../../../packaging/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := commentedKey.ReplaceAll(b, []byte("$1"))
	cfg, err := config.Parse(doc, "packaging/config.yaml, uncommented")
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if cfg.RulesDir == "" || len(cfg.Probes.Sections) == 0 || cfg.Cluster.Heartbeat == 0 || cfg.GCPercent == nil {
		t.Fatalf("uncommenting lost settings (is the pattern still right?): %+v", cfg)
	}
	cat, err := rules.Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rules.Compile(cat, cfg.RuleOptions()); err != nil {
		t.Errorf("does not compile with the catalogue:\n%v", err)
	}
	env := &probe.Env{Root: t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now, Tags: map[string]bool{}}
	if _, err := probe.Build(env, cfg.Probes.Sections); err != nil {
		t.Errorf("probes section: %v", err)
	}
}
