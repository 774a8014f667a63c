package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"go.yaml.in/yaml/v3"
)

// The structural redactors parse a file known to hold credentials
// (kubeconfig, registry auth, credential provider and containerd config,
// environment file) and keep its structure while they drop every
// credential field:
//
//   - the value of a key that names a secret (token, password, auth,
//     client-key-data, identitytoken, ...; not tokenFile), and everything
//     under it when it is a table or a list;
//   - the value of an env list entry ({name: N, value: V}) or env map
//     unless N is known to be harmless (AWS_PROFILE, AWS_REGION, *_FILE,
//     ...); a proxy keeps its host and port;
//   - secret flags in args lists (--token X, --password=X, mysql -pX).
//
// Every string they keep still goes through Scan. They fail on content
// that does not parse, so that the caller can leave it out instead of
// falling back to patterns.

// Kubeconfig is YAML for a kubeconfig, returning only the number of
// values redacted.
func Kubeconfig(b []byte) ([]byte, int, error) {
	out, c, err := YAML(b)
	return out, c.Total(), err
}

// YAML redacts a YAML (or JSON) document stream structurally; the output
// is YAML.
func YAML(b []byte) ([]byte, Counts, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	var c Counts
	docs := 0
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, nil, err
		}
		walkYAML(&doc, &c)
		if err := enc.Encode(&doc); err != nil {
			return nil, nil, err
		}
		docs++
	}
	if err := enc.Close(); err != nil {
		return nil, nil, err
	}
	if docs == 0 && len(bytes.TrimSpace(b)) > 0 {
		return nil, nil, errors.New("no YAML document")
	}
	return out.Bytes(), c, nil
}

func walkYAML(n *yaml.Node, c *Counts) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, ch := range n.Content {
			walkYAML(ch, c)
		}
	case yaml.ScalarNode:
		if n.Tag == "!!str" || n.Tag == "!!binary" || n.Tag == "" {
			n.Value = scanString(n.Value, c)
		}
	case yaml.MappingNode:
		if name, ok := yamlEnvName(n); ok {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k, v := n.Content[i], n.Content[i+1]; k.Value == "value" {
					redactYAMLEnv(name, v, c)
				} else {
					walkYAML(v, c)
				}
			}
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch {
			case isSecretName(k.Value):
				redactYAMLAll(v, c, CredentialField)
			case k.Value == "env" && v.Kind == yaml.MappingNode:
				for j := 0; j+1 < len(v.Content); j += 2 {
					redactYAMLEnv(v.Content[j].Value, v.Content[j+1], c)
				}
			case k.Value == "args" && v.Kind == yaml.SequenceNode && allYAMLScalars(v):
				args := make([]string, len(v.Content))
				for j, a := range v.Content {
					args[j] = a.Value
				}
				args, ac := Args(args)
				addCounts(c, ac)
				for j, a := range v.Content {
					if a.Value != args[j] {
						setYAMLString(a, args[j])
					}
				}
			default:
				walkYAML(v, c)
			}
		}
	}
}

// yamlEnvName returns N of an env list entry {name: N, value: V}.
func yamlEnvName(n *yaml.Node) (string, bool) {
	var name string
	var hasName, hasValue bool
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k, v := n.Content[i], n.Content[i+1]; k.Value {
		case "name":
			name, hasName = v.Value, v.Kind == yaml.ScalarNode
		case "value":
			hasValue = true
		}
	}
	return name, hasName && hasValue
}

func redactYAMLEnv(name string, v *yaml.Node, c *Counts) {
	if v.Kind != yaml.ScalarNode || !isHarmlessEnv(name) {
		redactYAMLAll(v, c, Environment)
		return
	}
	s := v.Value
	if isProxyName(name) {
		s = stripUserinfo(s, c)
	}
	if s = scanString(s, c); s != v.Value {
		setYAMLString(v, s)
	}
}

// redactYAMLAll replaces every scalar value under n (n itself when it is
// one); mapping keys stay.
func redactYAMLAll(n *yaml.Node, c *Counts, cl string) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value != "" && n.Tag != "!!bool" && n.Tag != "!!null" && n.Value != Redacted {
			setYAMLString(n, Redacted)
			c.inc(cl)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			redactYAMLAll(n.Content[i], c, cl)
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, ch := range n.Content {
			redactYAMLAll(ch, c, cl)
		}
	case yaml.AliasNode:
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: Redacted}
		c.inc(cl)
	}
}

func setYAMLString(n *yaml.Node, s string) {
	n.Value, n.Tag, n.Style = s, "!!str", 0
}

func allYAMLScalars(n *yaml.Node) bool {
	for _, ch := range n.Content {
		if ch.Kind != yaml.ScalarNode {
			return false
		}
	}
	return true
}

// JSON redacts a JSON document structurally; the output is indented JSON
// with its object keys sorted.
func JSON(b []byte) ([]byte, Counts, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, errors.New("data after the JSON document")
	}
	var c Counts
	v = walkTree(v, &c)
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, nil, err
	}
	return out.Bytes(), c, nil
}

// TOML redacts a TOML document (containerd's config.toml, hosts.toml)
// structurally; the output is TOML with its keys sorted and without the
// comments, which may hold old credentials.
func TOML(b []byte) ([]byte, Counts, error) {
	var m map[string]any
	if err := toml.Unmarshal(b, &m); err != nil {
		return nil, nil, err
	}
	var c Counts
	v := walkTree(m, &c)
	out, err := toml.Marshal(v)
	if err != nil {
		return nil, nil, err
	}
	return out, c, nil
}

// walkTree redacts a decoded JSON or TOML value and returns it.
func walkTree(v any, c *Counts) any {
	switch t := v.(type) {
	case string:
		return scanString(t, c)
	case []any:
		for i := range t {
			t[i] = walkTree(t[i], c)
		}
	case map[string]any:
		if name, ok := t["name"].(string); ok {
			if val, ok := t["value"]; ok {
				t["value"] = redactTreeEnv(name, val, c)
				for k, x := range t {
					if k != "value" {
						t[k] = walkTree(x, c)
					}
				}
				return t
			}
		}
		for k, x := range t {
			switch {
			case isSecretName(k):
				t[k] = redactTreeAll(x, c, CredentialField)
			case k == "env":
				if env, ok := x.(map[string]any); ok {
					for n, val := range env {
						env[n] = redactTreeEnv(n, val, c)
					}
				} else {
					t[k] = walkTree(x, c)
				}
			case k == "args":
				if args, ok := stringList(x); ok {
					args, ac := Args(args)
					addCounts(c, ac)
					out := make([]any, len(args))
					for i, a := range args {
						out[i] = a
					}
					t[k] = out
				} else {
					t[k] = walkTree(x, c)
				}
			default:
				t[k] = walkTree(x, c)
			}
		}
	}
	return v
}

func redactTreeEnv(name string, v any, c *Counts) any {
	s, ok := v.(string)
	if !ok || !isHarmlessEnv(name) {
		return redactTreeAll(v, c, Environment)
	}
	if isProxyName(name) {
		s = stripUserinfo(s, c)
	}
	return scanString(s, c)
}

// redactTreeAll replaces every string and number under v; booleans stay
// (they say whether, not what).
func redactTreeAll(v any, c *Counts, class string) any {
	switch t := v.(type) {
	case []any:
		for i := range t {
			t[i] = redactTreeAll(t[i], c, class)
		}
		return t
	case map[string]any:
		for k, x := range t {
			t[k] = redactTreeAll(x, c, class)
		}
		return t
	case bool, nil:
		return v
	case string:
		if t == "" || t == Redacted {
			return t
		}
	}
	c.inc(class)
	return Redacted
}

func stringList(v any) ([]string, bool) {
	l, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, len(l))
	for i, x := range l {
		if out[i], ok = x.(string); !ok {
			return nil, false
		}
	}
	return out, true
}

// Env redacts an environment: an environment file (sep '\n': NAME=VALUE
// lines, comments, export) or a process environment (sep 0, as in
// /proc/*/environ). Values of variables whose names say they are secrets
// are dropped; proxies keep their host and port; the rest goes through
// Scan. The output has one variable a line. A line of a file that is not
// an assignment fails the whole file; an entry of a process environment
// that is not one is dropped.
func Env(b []byte, sep byte) ([]byte, Counts, error) {
	var c Counts
	var out bytes.Buffer
	entries := bytes.Split(b, []byte{sep})
	if len(entries) > 0 && len(entries[len(entries)-1]) == 0 {
		entries = entries[:len(entries)-1]
	}
	for i, e := range entries {
		line := strings.TrimSuffix(string(e), "\r")
		trimmed := strings.TrimSpace(line)
		if sep != 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			out.WriteString(scanString(line, &c))
			out.WriteByte('\n')
			continue
		}
		decl := strings.TrimPrefix(trimmed, "export ")
		name, value, ok := strings.Cut(decl, "=")
		if !ok || name == "" || strings.ContainsAny(name, " \t\"'") {
			if sep != 0 {
				return nil, nil, fmt.Errorf("line %d is not NAME=VALUE", i+1)
			}
			out.WriteString(Redacted + "\n")
			c.inc(Environment)
			continue
		}
		prefix := line[:strings.Index(line, name)+len(name)+1]
		switch {
		case isSecretEnvName(name) && strings.Trim(value, `"' `) != "":
			value = Redacted
			c.inc(Environment)
		case isProxyName(name):
			value = scanString(stripUserinfo(value, &c), &c)
		default:
			value = scanString(value, &c)
		}
		out.WriteString(prefix + value + "\n")
	}
	return out.Bytes(), c, nil
}

// Args redacts a command line, or the arguments alone (an exec plugin's
// args), given as a list: the values of secret flags (--token X, --password=X), mysql -pX, curl -u user:X, and
// whatever Scan finds in each argument.
func Args(args []string) ([]string, Counts) {
	var c Counts
	out := slices.Clone(args)
	cmd := ""
	if len(args) > 0 {
		cmd = path.Base(args[0])
	}
	pwFlag := slices.ContainsFunc(passwordFlagCommands, func(p string) bool { return strings.HasPrefix(cmd, p) })
	userFlag := slices.Contains(userFlagCommands, cmd)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if !strings.HasPrefix(a, "-") || a == Redacted {
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case pwFlag && a == "-p" && i+1 < len(out):
			i++
			out[i] = Redacted
			c.inc(CommandPassword)
		case pwFlag && strings.HasPrefix(a, "-p") && !strings.HasPrefix(a, "--") && len(a) > 2:
			out[i] = "-p" + Redacted
			c.inc(CommandPassword)
		case userFlag && (a == "-u" || a == "--user" || a == "--proxy-user" || a == "-U") && i+1 < len(out):
			i++
			if u, _, ok := strings.Cut(out[i], ":"); ok {
				out[i] = u + ":" + Redacted
				c.inc(CommandPassword)
			}
		case isSecretName(name) && hasVal:
			if val != "" {
				out[i] = a[:len(a)-len(val)] + Redacted
				c.inc(Assignment)
			}
		case isSecretName(name) && i+1 < len(out):
			i++
			out[i] = Redacted
			c.inc(Assignment)
		case isProxyName(name) && hasVal:
			out[i] = a[:len(a)-len(val)] + stripUserinfo(val, &c)
		}
	}
	for i, a := range out {
		out[i] = scanString(a, &c)
	}
	return out, c
}

// stripUserinfo redacts the password of a proxy setting, with or without
// a scheme.
func stripUserinfo(v string, c *Counts) string {
	b := []byte(v)
	start := 0
	if i := strings.Index(v, "://"); i >= 0 {
		start = i + 3
	}
	end := start
	for end < len(b) && !endsAuthority(b[end]) {
		end++
	}
	at := bytes.LastIndexByte(b[start:end], '@')
	if at < 0 {
		return v
	}
	var sp spans
	redactUserinfo(b, start, start+at, &sp, c)
	return string(sp.apply(b))
}

func scanString(s string, c *Counts) string {
	out, sc := Scan([]byte(s))
	if len(sc) == 0 {
		return s
	}
	addCounts(c, sc)
	return string(out)
}

func addCounts(c *Counts, o Counts) {
	if len(o) == 0 {
		return
	}
	if *c == nil {
		*c = Counts{}
	}
	c.Add(o)
}
