package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/reason"
	"github.com/nodehealthd/nodehealthd/internal/rules"
)

const docPath = "../../../docs/reasons.md"

// TestReasonsDocUpToDate fails when the catalogue or the probes changed
// without docs/reasons.md being regenerated.
func TestReasonsDocUpToDate(t *testing.T) {
	want, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("%v (generate it with: go generate ./internal/rules/docgen)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		line := 0
		for line < len(gl) && line < len(wl) && gl[line] == wl[line] {
			line++
		}
		t.Fatalf("docs/reasons.md is out of date (first difference at line %d); regenerate it with:\n\tgo generate ./internal/rules/docgen", line+1)
	}
}

// TestReasonsDocCoversCatalogue checks that every built-in reason, its
// description and action, and every reason a probe or NVML describes, with
// its operator-facing text, are in the document.
func TestReasonsDocCoversCatalogue(t *testing.T) {
	doc, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := rules.Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	ruleReasons := map[string]bool{}
	for _, r := range cat.Rules {
		ruleReasons[r.Reason] = true
		for _, s := range []string{"### " + code(r.Reason), oneLine(r.Description), oneLine(r.Action)} {
			if !bytes.Contains(doc, []byte(s)) {
				t.Errorf("rule %s: document lacks %q", r.EffectiveName(), s)
			}
		}
	}
	infos := reason.All()
	detectors := map[string]bool{}
	for _, in := range infos {
		detectors[in.Detector] = true
		want := []string{"| [" + code(in.Name) + "](#", cell(in.Description)}
		if ruleReasons[in.Name] {
			want = append(want, "| Also reported by | "+cell(detectorSource(in)))
		} else {
			want = append(want, "### "+code(in.Name), "| Severity | "+string(in.Severity)+" |",
				"| Source | "+cell(detectorSource(in))+" |", "| Recovery | "+cell(in.Recovery)+" |",
				"**What it means.** "+oneLine(in.Description), "**What to do.** "+oneLine(in.Action))
		}
		for _, s := range want {
			if !bytes.Contains(doc, []byte(s)) {
				t.Errorf("%s of %s: document lacks %q", in.Name, in.Detector, s)
			}
		}
	}
	// Both kinds of detector must be documented; an import lost from
	// docgen would otherwise leave their reasons out without a failure.
	if !detectors["nvml"] || !detectors["probe:pid-max"] {
		t.Errorf("detector reasons missing from the registry docgen sees: %v", detectors)
	}
}

func TestRecoveryText(t *testing.T) {
	d := policy.Duration(30 * time.Minute)
	for _, c := range []struct {
		r    rules.Rule
		want string
	}{
		{rules.Rule{Reason: "SoftLockup", Severity: "Warning"}, "Nothing to recover"},
		{rules.Rule{Reason: "XFSError", Severity: "Fatal"}, "Clears on reboot (the evidence belongs to the boot it was logged in), or with `nodehealthctl clear XFSError`."},
		{rules.Rule{Reason: "IPAMDNotReady", Severity: "Fatal", Recovery: &policy.Recovery{ExpireAfter: d}}, "Clears when not seen again for 30m, on reboot, or with `nodehealthctl clear IPAMDNotReady`."},
		{rules.Rule{Reason: "Disk", Severity: "Fatal", Recovery: &policy.Recovery{KeepAcrossReboot: true}}, "Kept across reboots"},
		{rules.Rule{Reason: "NvidiaXID${xid}Error", Severity: "Fatal"}, "`nodehealthctl clear NvidiaXID<xid>Error`"},
	} {
		if got := recovery(c.r); !strings.Contains(got, c.want) {
			t.Errorf("recovery(%s) = %q, want it to contain %q", c.r.Reason, got, c.want)
		}
	}
	if got := code("a|b`c"); got != "``a\\|b`c``" {
		t.Errorf("code() = %q", got)
	}
}

// TestOperatorGuideExampleConfig keeps the complete config.yaml example of
// the operator guide valid: it must parse strictly, compile with the
// catalogue and configure the probes it names.
func TestOperatorGuideExampleConfig(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/operator-guide.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "A complete example:\n\n```yaml\n")
	if !ok {
		t.Fatal("operator guide has no complete config example")
	}
	example, _, _ := strings.Cut(rest, "```")
	cfg, err := config.Parse([]byte(example), "operator-guide.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Reasons) == 0 || len(cfg.Probes.Sections) == 0 || len(cfg.Sets) == 0 {
		t.Fatalf("example lost sections: %+v", cfg)
	}
	checkConfig(t, cfg)
}

// checkConfig fails t unless cfg compiles with the catalogue and builds
// the probes it names: what the daemon does with a config it installs.
func checkConfig(t *testing.T, cfg *config.Config) {
	t.Helper()
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
