package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/problems"
)

func writeRules(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// wantProblems checks that err lists each of want (substrings of one
// problem each) and nothing more.
func wantProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	list := problems.List(err)
	for _, w := range want {
		found := false
		for _, p := range list {
			found = found || strings.Contains(p.Error(), w)
		}
		if !found {
			t.Errorf("no problem %q among:\n%v", w, err)
		}
	}
	if len(list) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(list), len(want), err)
	}
}

const goodRule = `    condition: KernelReady
    severity: Warning
    source: kmsg
    patterns: ['x']
`

// TestParseReportsUnknownFieldsAndTheRest: an unknown field or a value of
// the wrong type does not hide the file's other problems; each names its
// line and rule.
func TestParseReportsUnknownFieldsAndTheRest(t *testing.T) {
	f, err := Parse([]byte(`rules:
  - name: A
    reason: A
`+goodRule+`    typo: 1
    threshold: {count: 2, window: forever}
  - name: B
    reason: B
    condition: KernelReady
    severity: Loud
    source: kmsg
    patterns: ['(']
    patern: x
`), "c.yaml")
	wantProblems(t, err,
		`c.yaml:8: rule "A": unknown field typo`,
		`c.yaml:9: rule "A": invalid duration "forever"`,
		`c.yaml:16: rule "B": unknown field patern`)
	if len(f.Rules) != 2 {
		t.Fatalf("decoded %d rules, want both", len(f.Rules))
	}
	_, err = Compile(f, Options{})
	wantProblems(t, err,
		`c.yaml:2: rule "A": threshold.window must be positive`,
		`c.yaml:10: rule "B": unknown severity "Loud"`,
		`c.yaml:10: rule "B": pattern 1: error parsing regexp`)
}

// TestLoadDirReportsEveryFile: a syntax error in one file does not hide
// the others' problems, and what did load is returned to be compiled.
func TestLoadDirReportsEveryFile(t *testing.T) {
	dir := writeRules(t, map[string]string{
		"a.yaml":     "rules:\n  - name: A\n   reason: A\n",
		"b.yaml":     "rules:\n  - name: B\n    reason: B\n" + goodRule + "    typo: 1\n",
		"c.yml":      "rules:\n  - name: C\n    reason: C\n" + goodRule,
		"ignored.md": "not: [rules",
	})
	f, err := LoadDir(dir)
	wantProblems(t, err, filepath.Join(dir, "a.yaml")+":", filepath.Join(dir, "b.yaml")+`:8: rule "B": unknown field typo`)
	var names []string
	for _, r := range f.Rules {
		names = append(names, r.Name+"@"+r.Origin)
	}
	if got, want := strings.Join(names, " "), "B@"+filepath.Join(dir, "b.yaml")+":2 C@"+filepath.Join(dir, "c.yml")+":2"; got != want {
		t.Errorf("loaded %s, want %s", got, want)
	}
}

// TestLoadDirRefusesDuplicateNames: two operator rules of one name are an
// error naming both places, whether or not the name is a built-in one (which
// one operator rule may replace).
func TestLoadDirRefusesDuplicateNames(t *testing.T) {
	dir := writeRules(t, map[string]string{
		"d.yaml": "rules:\n  - name: Dup\n    reason: D\n" + goodRule + "  - name: SoftLockup\n    reason: S1\n" + goodRule,
		"e.yaml": "# again\nrules:\n  - name: Dup\n    reason: E\n" + goodRule + "  - name: SoftLockup\n    reason: S2\n" + goodRule,
	})
	d, e := filepath.Join(dir, "d.yaml"), filepath.Join(dir, "e.yaml")
	op, err := LoadDir(dir)
	wantProblems(t, err,
		e+`:3: rule "Dup": name already used at `+d+":2",
		e+`:9: rule "SoftLockup": name already used at `+d+":8")

	// One operator rule named like a built-in one replaces it.
	builtin, err := Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(Merge(builtin, op), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range set.Rules() {
		if r.Name == "SoftLockup" && r.Reason != "S1" {
			t.Errorf("SoftLockup is %s from %s, want the operator's S1", r.Reason, r.Origin)
		}
	}
}

func TestLoadDirLimits(t *testing.T) {
	big := "rules: []\n" + strings.Repeat("#", MaxFileSize)
	dir := writeRules(t, map[string]string{"big.yaml": big, "ok.yaml": "rules:\n  - name: A\n    reason: A\n" + goodRule})
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := LoadDir(dir)
	wantProblems(t, err, fmt.Sprintf("%s: %d bytes; a rule file may hold at most 1048576 (1 MiB)", filepath.Join(dir, "big.yaml"), len(big)))
	if len(f.Rules) != 1 {
		t.Errorf("the other file's rules were not loaded: %+v", f.Rules)
	}

	many := map[string]string{}
	for i := range MaxFiles + 1 {
		many[fmt.Sprintf("%04d.yaml", i)] = ""
	}
	_, err = LoadDir(writeRules(t, many))
	wantProblems(t, err, "1001 rule files, at most 1000 are read")
}

func TestLoadDirFIFOIsAProblemNotAHang(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") || !errors.As(err, new(*problems.Problem)) {
		t.Errorf("FIFO: %v", err)
	}
}
