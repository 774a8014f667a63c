// Package problems lists what is wrong with the files an operator writes
// (rules, config.yaml), each problem with its file and line, so that one
// validation run shows every problem instead of the first.
package problems

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one problem at a place in a file.
type Problem struct {
	File string
	// Line is 0 when the problem is about the file as a whole.
	Line int
	// Rule names the rule concerned, if any.
	Rule string
	Err  error
}

// Error reads "file:line: rule NAME: problem".
func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	if p.Rule != "" {
		fmt.Fprintf(&b, ": rule %q", p.Rule)
	}
	b.WriteString(": ")
	b.WriteString(p.Err.Error())
	return b.String()
}

func (p *Problem) Unwrap() error { return p.Err }

var (
	// yaml.v3 puts the line into its messages: "yaml: line 3: did not
	// find expected key" for syntax, "line 3: field x not found in type
	// rules.Rule" for each entry of a TypeError.
	lineRE    = regexp.MustCompile(`^(yaml: )?line ([0-9]+): (.*)$`)
	unknownRE = regexp.MustCompile(`^field (.*) not found in type .*$`)
)

// FromYAML splits an error of go.yaml.in/yaml/v3 into problems of file,
// one per entry of a *yaml.TypeError, with the line yaml reported.
func FromYAML(file string, err error) []error {
	if err == nil {
		return nil
	}
	msgs := []string{err.Error()}
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		msgs = te.Errors
	}
	out := make([]error, 0, len(msgs))
	for _, msg := range msgs {
		p := &Problem{File: file}
		if m := lineRE.FindStringSubmatch(msg); m != nil {
			p.Line, _ = strconv.Atoi(m[2])
			msg = m[1] + m[3]
		}
		msg = unknownRE.ReplaceAllString(msg, "unknown field $1")
		p.Err = errors.New(msg)
		out = append(out, p)
	}
	return out
}

// List flattens err, joined errors included, into its problems.
func List(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, List(e)...)
		}
		return out
	}
	return []error{err}
}

// Join joins the problems of errs, ordered by file and line; errors that
// are not a *Problem come first, in their order. It returns nil if there
// are none.
func Join(errs ...error) error {
	var list []error
	for _, err := range errs {
		list = append(list, List(err)...)
	}
	slices.SortStableFunc(list, func(a, b error) int {
		pa, oka := a.(*Problem)
		pb, okb := b.(*Problem)
		switch {
		case oka && okb:
			return cmp.Or(cmp.Compare(pa.File, pb.File), cmp.Compare(pa.Line, pb.Line))
		case oka:
			return 1
		case okb:
			return -1
		}
		return 0
	})
	return errors.Join(list...)
}
