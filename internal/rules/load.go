package rules

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/go-multierror"
	"go.yaml.in/yaml/v3"
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
func LoadDir(dir string) (*File, error) {
	if dir == "" {
		return &File{}, nil
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return &File{}, nil
	}
	return loadFS(os.DirFS(dir), ".", dir+string(filepath.Separator))
}

func loadFS(fsys fs.FS, dir, prefix string) (*File, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read rules directory %s: %w", strings.TrimSuffix(prefix, "/"), err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := &File{Sets: map[string][]string{}}
	var errs *multierror.Error
	for _, n := range names {
		b, err := fs.ReadFile(fsys, filepath.ToSlash(filepath.Join(dir, n)))
		if err != nil {
			errs = multierror.Append(errs, err)
			continue
		}
		f, err := Parse(b, prefix+n)
		if err != nil {
			errs = multierror.Append(errs, err)
			continue
		}
		for k, v := range f.Sets {
			if _, dup := out.Sets[k]; dup {
				errs = multierror.Append(errs, fmt.Errorf("%s: set %q is defined twice", prefix+n, k))
			}
			out.Sets[k] = v
		}
		out.Rules = append(out.Rules, f.Rules...)
	}
	return out, errs.ErrorOrNil()
}

// Parse decodes one rules document strictly: unknown fields are errors.
// name is used in error messages and rule origins.
func Parse(b []byte, name string) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) { // an empty document holds no rules
			return &File{}, nil
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var errs *multierror.Error
			for _, e := range te.Errors {
				errs = multierror.Append(errs, fmt.Errorf("%s: %s", name, e))
			}
			return nil, errs
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// A second, untyped pass only to learn each rule's line for messages.
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err == nil && len(doc.Content) == 1 {
		root := doc.Content[0]
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "rules" {
				for j, r := range root.Content[i+1].Content {
					if j < len(f.Rules) {
						f.Rules[j].Origin = fmt.Sprintf("%s:%d", name, r.Line)
					}
				}
			}
		}
	}
	for i := range f.Rules {
		if f.Rules[i].Origin == "" {
			f.Rules[i].Origin = name
		}
	}
	return &f, nil
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
