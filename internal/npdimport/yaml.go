package npdimport

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// YAML renders the rules file: a header naming the inputs, and before
// each rule the NPD rule and pattern it was converted from.
func (r *Result) YAML() ([]byte, error) {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, rule := range r.Rules.Rules {
		var n yaml.Node
		if err := n.Encode(rule); err != nil {
			return nil, fmt.Errorf("encode rule %s: %w", rule.Name, err)
		}
		n.HeadComment = r.comments[rule.Name]
		quotePatterns(&n)
		seq.Content = append(seq.Content, &n)
	}
	root := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Value: "rules"}, seq,
	}}
	root.HeadComment = "Converted from node-problem-detector system-log-monitor configs by\n" +
		"nodehealthctl rules import-npd: " + strings.Join(r.Files, ", ") + ".\n" +
		"See docs/rules.md, \"Moving from node-problem-detector\", for what differs."
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// quotePatterns writes regular expressions single-quoted, where a
// backslash is just a backslash, when they are printable.
func quotePatterns(rule *yaml.Node) {
	for i := 0; i+1 < len(rule.Content); i += 2 {
		switch rule.Content[i].Value {
		case "patterns", "exclude":
			for _, p := range rule.Content[i+1].Content {
				if printable(p.Value) {
					p.Style = yaml.SingleQuotedStyle
				}
			}
		case "message":
			if v := rule.Content[i+1]; printable(v.Value) {
				v.Style = yaml.SingleQuotedStyle
			}
		}
	}
}

func printable(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}
