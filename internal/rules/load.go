package rules

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/problems"
)

//go:embed catalogue/*.yaml
var catalogueFS embed.FS

// Catalogue returns the built-in rules and sets embedded in the binary.
func Catalogue() (*File, error) {
	f, err := loadFS(catalogueFS, "catalogue", "builtin:")
	if err != nil {
		return nil, err
	}
	for i := range f.Rules {
		f.Rules[i].Builtin = true
	}
	return f, nil
}

// LoadDir reads every *.yaml and *.yml file of dir in name order. A missing
// dir is not an error: operators need not add rules.
//
// On error the File still holds what could be read, so that compiling it
// reports the problems of the rules that did load too; the error lists
// every problem of every file (see Parse). Two rules of the same name are
// an error naming both places; the later one is left out.
func LoadDir(dir string) (*File, error) {
	if dir == "" {
		return &File{}, nil
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return &File{}, nil
	}
	return loadFS(os.DirFS(dir), ".", dir+string(filepath.Separator))
}

// Limits on a rules directory. Real ones hold a few files of a few KiB;
// these catch a log or a binary copied there by mistake before it is
// parsed into memory.
const (
	MaxFileSize = 1 << 20
	MaxFiles    = 1000
)

func loadFS(fsys fs.FS, dir, prefix string) (*File, error) {
	out := &File{Sets: map[string][]string{}}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return out, fmt.Errorf("read rules directory %s: %w", strings.TrimSuffix(prefix, "/"), err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var errs []error
	if len(names) > MaxFiles {
		errs = append(errs, &problems.Problem{File: strings.TrimSuffix(prefix, "/"), Err: fmt.Errorf("%d rule files, at most %d are read (the first in name order)", len(names), MaxFiles)})
		names = names[:MaxFiles]
	}
	setFile := map[string]string{}
	ruleAt := map[string]string{}
	for _, n := range names {
		path := prefix + n
		b, err := readRuleFile(fsys, filepath.ToSlash(filepath.Join(dir, n)))
		if err != nil {
			errs = append(errs, &problems.Problem{File: path, Err: err})
			continue
		}
		if b == nil {
			continue // a directory
		}
		f, err := Parse(b, path)
		errs = append(errs, problems.List(err)...)
		for _, k := range slices.Sorted(maps.Keys(f.Sets)) {
			if prev, dup := setFile[k]; dup {
				errs = append(errs, &problems.Problem{File: path, Err: fmt.Errorf("set %q is already defined in %s", k, prev)})
			}
			setFile[k] = path
			out.Sets[k] = f.Sets[k]
		}
		for _, r := range f.Rules {
			name := r.EffectiveName()
			if prev, dup := ruleAt[name]; dup && name != "" {
				errs = append(errs, r.problem(fmt.Errorf("name already used at %s (give each rule a distinct name)", prev)))
				continue
			}
			ruleAt[name] = r.Origin
			out.Rules = append(out.Rules, r)
		}
	}
	return out, errors.Join(errs...)
}

// readRuleFile reads a regular file of at most MaxFileSize bytes; it
// returns nil for a directory (through a link).
func readRuleFile(fsys fs.FS, name string) ([]byte, error) {
	fi, err := fs.Stat(fsys, name)
	switch {
	case err != nil:
		return nil, err
	case fi.IsDir():
		return nil, nil
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	case fi.Size() > MaxFileSize:
		return nil, fmt.Errorf("%d bytes; a rule file may hold at most %d (1 MiB)", fi.Size(), MaxFileSize)
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err == nil && len(b) > MaxFileSize {
		err = fmt.Errorf("over %d bytes; a rule file may hold at most 1 MiB", MaxFileSize)
	}
	return b, err
}

// Parse decodes one rules document strictly: unknown fields are errors.
// name is used in error messages and rule origins.
//
// Every problem is reported, each as a *problems.Problem with its line and,
// within a rule, the rule's name. Unless the document is not YAML at all,
// the File holds what could be decoded even on error, so that Compile can
// report the other problems of its rules too.
func Parse(b []byte, name string) (*File, error) {
	// The untyped tree gives each rule's lines; it is also where a
	// syntax error is found.
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return &File{}, errors.Join(problems.FromYAML(name, err)...)
	}
	var f File
	var errs []error
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) { // an empty document holds no rules
		errs = problems.FromYAML(name, err)
		if _, partial := errors.AsType[*yaml.TypeError](err); !partial {
			return &File{}, errors.Join(errs...)
		}
	}
	spans := ruleSpans(&doc)
	if len(spans) != len(f.Rules) {
		spans = nil // cannot tell which rule is which; name the file only
	}
	for i := range f.Rules {
		r := &f.Rules[i]
		r.file, r.Origin = name, name
		if spans != nil {
			r.line = spans[i].first
			r.Origin = fmt.Sprintf("%s:%d", name, r.line)
		}
	}
	for _, err := range errs {
		p := err.(*problems.Problem)
		for i, sp := range spans {
			if sp.first <= p.Line && p.Line <= sp.last {
				p.Rule = f.Rules[i].EffectiveName()
			}
		}
	}
	return &f, errors.Join(errs...)
}

// span is the first and last line of a rule.
type span struct{ first, last int }

// ruleSpans returns the lines of the entries of the document's rules that
// decode into a Rule: a mapping or null. yaml drops the others (with an
// error), so the spans line up with File.Rules.
func ruleSpans(doc *yaml.Node) []span {
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	root := doc.Content[0]
	var out []span
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "rules" || root.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for _, r := range root.Content[i+1].Content {
			if r.Kind == yaml.MappingNode || (r.Kind == yaml.ScalarNode && r.Tag == "!!null") {
				out = append(out, span{r.Line, lastLine(r)})
			}
		}
	}
	return out
}

func lastLine(n *yaml.Node) int {
	last := n.Line
	for _, c := range n.Content {
		last = max(last, lastLine(c))
	}
	return last
}

// problem reports err as a problem of r.
func (r *Rule) problem(err error) error {
	if r.file == "" { // not from Parse
		return &problems.Problem{File: r.Origin, Rule: r.EffectiveName(), Err: err}
	}
	return &problems.Problem{File: r.file, Line: r.line, Rule: r.EffectiveName(), Err: err}
}

// Merge layers operator rules over the catalogue: an operator rule whose
// name equals a built-in one replaces it, others are added. Operator sets
// replace built-in sets of the same name.
func Merge(builtin, operator *File) *File {
	out := &File{Sets: map[string][]string{}}
	for k, v := range builtin.Sets {
		out.Sets[k] = v
	}
	for k, v := range operator.Sets {
		out.Sets[k] = v
	}
	replaced := map[string]Rule{}
	for _, r := range operator.Rules {
		replaced[r.EffectiveName()] = r
	}
	for _, r := range builtin.Rules {
		if op, ok := replaced[r.EffectiveName()]; ok {
			out.Rules = append(out.Rules, op)
			delete(replaced, r.EffectiveName())
			continue
		}
		out.Rules = append(out.Rules, r)
	}
	for _, r := range operator.Rules {
		if _, ok := replaced[r.EffectiveName()]; ok {
			out.Rules = append(out.Rules, r)
		}
	}
	return out
}

// EffectiveName is the rule's name, or its reason when unnamed.
func (r *Rule) EffectiveName() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Reason
}
