package npdimport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// monitorConfig is an NPD system-log-monitor config, decoded as NPD decodes
// it: encoding/json, keys matched without regard to case.
type monitorConfig struct {
	Plugin           string            `json:"plugin"`
	PluginConfig     map[string]string `json:"pluginConfig"`
	LogPath          string            `json:"logPath"`
	Lookback         string            `json:"lookback"`
	Delay            string            `json:"delay"`
	SkipList         []string          `json:"skipList"`
	BufferSize       int               `json:"bufferSize"`
	Source           string            `json:"source"`
	MetricsReporting *bool             `json:"metricsReporting"`
	Conditions       []npdCondition    `json:"conditions"`
	Rules            []npdRule         `json:"rules"`

	// ruleLines are the lines the rules start on (nil if unknown).
	ruleLines []int
	// unknown lists fields NPD does not know, as "key" or "rules[3].key".
	unknown []string
}

type npdCondition struct {
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

type npdRule struct {
	Type      string `json:"type"`
	Condition string `json:"condition"`
	Reason    string `json:"reason"`
	Pattern   string `json:"pattern"`
	Suffix    string `json:"patternGeneratedMessageSuffix"`
}

// NPD's defaults (pkg/systemlogmonitor/config.go).
const defaultBufferSize = 10

var (
	topKeys  = []string{"plugin", "pluginConfig", "logPath", "lookback", "delay", "skipList", "bufferSize", "source", "metricsReporting", "conditions", "rules"}
	ruleKeys = []string{"type", "condition", "reason", "pattern", "patternGeneratedMessageSuffix"}
	condKeys = []string{"type", "status", "transition", "reason", "message"}
	// pluginKeys are the pluginConfig keys each plugin reads.
	pluginKeys = map[string][]string{
		"kmsg":     nil,
		"journald": {"source"},
		"filelog":  {"timestamp", "message", "timestampFormat"},
	}
)

// parseConfig decodes one NPD config. Errors are what NPD would refuse to
// start with, and a config of another kind (custom plugin monitor).
func parseConfig(name string, b []byte) (*monitorConfig, error) {
	var c monitorConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", at(name, b, jsonOffset(err)), err)
	}
	switch c.Plugin {
	case "kmsg", "journald", "filelog":
	case "custom":
		return nil, fmt.Errorf("%s: a custom-plugin-monitor config (plugin \"custom\"): import-npd converts system-log-monitor configs (plugin kmsg, journald or filelog)", name)
	case "":
		return nil, fmt.Errorf("%s: no plugin: not an NPD system-log-monitor config", name)
	default:
		return nil, fmt.Errorf("%s: plugin %q: want kmsg, journald or filelog", name, c.Plugin)
	}
	if c.BufferSize < 0 {
		return nil, fmt.Errorf("%s: bufferSize %d must not be negative", name, c.BufferSize)
	}
	if c.BufferSize == 0 {
		c.BufferSize = defaultBufferSize
	}
	var errs []error
	switch c.Plugin {
	case "journald":
		if c.PluginConfig["source"] == "" {
			errs = append(errs, fmt.Errorf("%s: journald plugin without pluginConfig.source (NPD refuses an empty source)", name))
		}
	case "filelog":
		for _, k := range pluginKeys["filelog"] {
			if c.PluginConfig[k] == "" {
				errs = append(errs, fmt.Errorf("%s: filelog plugin without pluginConfig.%s", name, k))
			}
		}
		if c.LogPath == "" {
			errs = append(errs, fmt.Errorf("%s: filelog plugin without logPath", name))
		}
	}
	c.ruleLines, c.unknown = layoutOf(b)
	return &c, errors.Join(errs...)
}

// layoutOf finds the line each rule starts on and the fields NPD would
// ignore, walking the JSON a second time.
func layoutOf(b []byte) (lines []int, unknown []string) {
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return nil, nil
	}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if !knownKey(topKeys, k) {
			unknown = append(unknown, k)
		}
	}
	for _, list := range []struct {
		name string
		keys []string
	}{{"conditions", condKeys}, {"rules", ruleKeys}} {
		for k, v := range top {
			if !strings.EqualFold(k, list.name) {
				continue
			}
			var entries []map[string]json.RawMessage
			if json.Unmarshal(v, &entries) != nil {
				continue
			}
			for i, e := range entries {
				for _, ek := range slices.Sorted(maps.Keys(e)) {
					if !knownKey(list.keys, ek) {
						unknown = append(unknown, fmt.Sprintf("%s[%d].%s", list.name, i+1, ek))
					}
				}
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, unknown
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, unknown
		}
		if k, _ := t.(string); strings.EqualFold(k, "rules") {
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return nil, unknown
			}
			lines = lines[:0]
			for dec.More() {
				off := dec.InputOffset()
				var skip json.RawMessage
				if dec.Decode(&skip) != nil {
					return nil, unknown
				}
				lines = append(lines, lineAt(b, off+int64(len(b[off:])-len(bytes.TrimLeft(b[off:], " \t\r\n,")))))
			}
			if _, err := dec.Token(); err != nil {
				return nil, unknown
			}
			continue
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return nil, unknown
		}
	}
	return lines, unknown
}

func knownKey(keys []string, k string) bool {
	for _, known := range keys {
		if strings.EqualFold(known, k) {
			return true
		}
	}
	return false
}

func jsonOffset(err error) int64 {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return se.Offset
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return te.Offset
	}
	return -1
}

func lineAt(b []byte, off int64) int {
	if off < 0 || off > int64(len(b)) {
		return 0
	}
	return 1 + bytes.Count(b[:off], []byte("\n"))
}

// at is "name:line", or name when the line is unknown.
func at(name string, b []byte, off int64) string {
	if l := lineAt(b, off); l > 0 {
		return fmt.Sprintf("%s:%d", name, l)
	}
	return name
}
