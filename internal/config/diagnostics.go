package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Diagnostics configures the bundles the daemon captures by itself when a
// condition turns False (internal/capture) and the summary it writes to
// the console. Every field is optional and reloadable; see
// docs/diagnostics.md.
type Diagnostics struct {
	// Dir holds the captured bundles (default DefaultDiagnosticsDir).
	Dir string `yaml:"dir,omitempty"`
	// OnFatal captures a bundle when a condition turns False (default on).
	OnFatal Toggle `yaml:"onFatal,omitempty"`
	// OnWarning captures a bundle when a Warning finding of one of these
	// reasons is committed.
	OnWarning []string `yaml:"onWarning,omitempty"`
	// Retention bounds what Dir keeps.
	Retention Retention `yaml:"retention,omitempty"`
	// Upload sends each captured bundle off the node.
	Upload Upload `yaml:"upload,omitempty"`
	// Console writes a summary to the console while a condition is False
	// (default on).
	Console *bool `yaml:"console,omitempty"`
	// Collector is the nodehealthctl binary that collects (default: the
	// one next to the daemon's executable, else nodehealthctl on $PATH).
	Collector string `yaml:"collector,omitempty"`
	// Requests serves captures requested by a NodeDiagnostic
	// (internal/nodediag); it needs cluster publishing.
	Requests Requests `yaml:"requests,omitempty"`
}

// Requests configures captures requested from the cluster.
type Requests struct {
	// Enabled watches the node's NodeDiagnostic (default on).
	Enabled *bool `yaml:"enabled,omitempty"`
	// NodeDir is where destination "node" leaves the bundle (default
	// DefaultSupportDir), for download through the kubelet's node proxy.
	NodeDir string `yaml:"nodeDir,omitempty"`
}

// DefaultSupportDir is where the EKS node agent leaves a NodeDiagnostic's
// bundle for destination "node": /var/log is what the kubelet's
// /logs/ endpoint serves.
const DefaultSupportDir = "/var/log/support"

// On reports whether requests are served (the default).
func (r Requests) On() bool { return r.Enabled == nil || *r.Enabled }

// Dir is NodeDir or its default.
func (r Requests) Dir() string {
	if r.NodeDir == "" {
		return DefaultSupportDir
	}
	return r.NodeDir
}

// Retention bounds the bundles kept; the oldest go first.
type Retention struct {
	// Bundles is how many are kept (default DefaultRetainBundles).
	Bundles int `yaml:"bundles,omitempty"`
	// Size is how many bytes they may take together (default
	// DefaultRetainBytes).
	Size ByteSize `yaml:"size,omitempty"`
}

// Upload names where bundles go.
type Upload struct {
	// S3 is s3://bucket/prefix/; {node} in it is the node's name.
	S3 string `yaml:"s3,omitempty"`
}

// Defaults of the diagnostics section.
const (
	DefaultDiagnosticsDir = "/var/log/nodehealthd/diagnostics"
	DefaultRetainBundles  = 3
	DefaultRetainBytes    = 200 << 20
)

// BundleDir is Dir or its default.
func (d Diagnostics) BundleDir() string {
	if d.Dir == "" {
		return DefaultDiagnosticsDir
	}
	return d.Dir
}

// KeepBundles is Retention.Bundles or its default.
func (d Diagnostics) KeepBundles() int {
	if d.Retention.Bundles == 0 {
		return DefaultRetainBundles
	}
	return d.Retention.Bundles
}

// KeepBytes is Retention.Size or its default.
func (d Diagnostics) KeepBytes() int64 {
	if d.Retention.Size == 0 {
		return DefaultRetainBytes
	}
	return int64(d.Retention.Size)
}

// ConsoleOn reports whether the console summary is on (the default).
func (d Diagnostics) ConsoleOn() bool { return d.Console == nil || *d.Console }

// reasonName is what a reason looks like once any template is filled in
// (the rule compiler's constraint).
var reasonName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

// validate checks what the YAML types cannot; key is the key of each
// problem, for its line.
func (d Diagnostics) validate() (key string, err error) {
	if d.Dir != "" && !filepath.IsAbs(d.Dir) {
		return "dir", fmt.Errorf("%q must be an absolute path", d.Dir)
	}
	if d.Requests.NodeDir != "" && !filepath.IsAbs(d.Requests.NodeDir) {
		return "requests", fmt.Errorf("nodeDir %q must be an absolute path", d.Requests.NodeDir)
	}
	if d.Collector != "" && !filepath.IsAbs(d.Collector) {
		return "collector", fmt.Errorf("%q must be an absolute path", d.Collector)
	}
	for _, r := range d.OnWarning {
		if !reasonName.MatchString(r) {
			return "onWarning", fmt.Errorf("%q is not a reason (letters, digits and '-', starting with a letter)", r)
		}
	}
	if d.Retention.Bundles < 0 {
		return "retention", fmt.Errorf("bundles %d: must be at least 1", d.Retention.Bundles)
	}
	if d.Retention.Size < 0 {
		return "retention", fmt.Errorf("size %d: must be positive", d.Retention.Size)
	}
	if d.Upload.S3 != "" {
		if _, _, err := ParseS3URL(d.Upload.S3); err != nil {
			return "upload", err
		}
	}
	return "", nil
}

// ParseS3URL splits s3://bucket/prefix into the bucket and the key prefix
// (ending in "/" unless empty).
func ParseS3URL(s string) (bucket, prefix string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("s3 %q: %w", s, err)
	}
	if u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("s3 %q: want s3://bucket/prefix/", s)
	}
	prefix = strings.TrimPrefix(u.Path, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return u.Host, prefix, nil
}

// ByteSize is a size in bytes, written as a number of bytes or with a
// binary unit: 200MiB, 1GiB, 512KiB.
type ByteSize int64

var byteUnits = map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	mult, ok := byteUnits[unit]
	v, err := strconv.ParseInt(num, 10, 64)
	if n.Kind != yaml.ScalarNode || !ok || err != nil || v > (1<<62)/mult {
		// A TypeError lets the rest of the file decode, as a wrong type does.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: size %q: want bytes, or a number with KiB, MiB or GiB", n.Line, s)}}
	}
	*b = ByteSize(v * mult)
	return nil
}
