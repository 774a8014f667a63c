package main

import (
	"os"
	"regexp"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/config"
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
	checkConfig(t, cfg)
}
