package problems

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestFromYAMLAndJoin(t *testing.T) {
	var v struct {
		A int `yaml:"a"`
	}
	dec := yaml.NewDecoder(strings.NewReader("a: x\nb: 1\n"))
	dec.KnownFields(true)
	typeErrs := FromYAML("t.yaml", dec.Decode(&v))
	syntaxErrs := FromYAML("s.yaml", yaml.Unmarshal([]byte("a: [\n"), &v))
	other := errors.New("read rules directory: permission denied")
	err := Join(errors.Join(typeErrs...), &Problem{File: "r.yaml", Line: 3, Rule: "R", Err: errors.New("bad")}, other, errors.Join(syntaxErrs...))
	var got []string
	for _, p := range List(err) {
		got = append(got, p.Error())
	}
	want := []string{
		"read rules directory: permission denied",
		`r.yaml:3: rule "R": bad`,
		"s.yaml:1: yaml: did not find expected node content",
		"t.yaml:1: cannot unmarshal !!str `x` into int",
		"t.yaml:2: unknown field b",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if Join(nil, nil) != nil {
		t.Error("Join of nothing is not nil")
	}
}
