package diag

import (
	"fmt"
	"path"
	"strings"

	"github.com/nodehealthd/nodehealthd/internal/redact"
)

// format is how a file known to hold credentials is redacted structurally
// before the final pattern pass.
type format int

const (
	plain   format = iota // the pattern pass alone
	yamlDoc               // YAML or JSON, written as YAML (kubeconfigs)
	jsonDoc               // JSON
	tomlDoc               // TOML (containerd)
	envFile               // NAME=VALUE lines
	environ               // NUL-separated NAME=VALUE (/proc/*/environ)
)

func (f format) String() string {
	return [...]string{"text", "YAML", "JSON", "TOML", "an environment file", "a process environment"}[f]
}

// redact applies the structural redaction of f.
func (f format) redact(b []byte) ([]byte, redact.Counts, error) {
	switch f {
	case yamlDoc:
		return redact.YAML(b)
	case jsonDoc:
		return redact.JSON(b)
	case tomlDoc:
		return redact.TOML(b)
	case envFile:
		return redact.Env(b, '\n')
	case environ:
		return redact.Env(b, 0)
	}
	out, c := redact.Scan(b)
	return out, c, nil
}

// treatment is how a host file is collected: left out (exclude says why),
// redacted structurally (format), or with the pattern pass alone.
type treatment struct {
	format  format
	exclude string
}

// Why files are left out, as the manifest says.
const (
	holdsPrivateKey = "excluded: holds a private key"
	holdsUserData   = "excluded: cloud-init instance data (user data, scripts) may hold credentials"
	holdsEKSData    = "excluded: EKS bootstrap data that cannot be redacted structurally may hold credentials"
)

// treat decides how the host file p is collected. It is the deny list:
// files known to hold credentials are never passed through the pattern
// pass alone, wherever in the plan (a file item, a directory copy) they
// turn up. Every item of the plan goes through it.
func treat(p string) treatment {
	p = path.Clean(p)
	base := path.Base(p)
	ext := path.Ext(base)
	switch {
	case ext == ".key" || strings.HasSuffix(base, "-key.pem") || strings.HasPrefix(base, "kubelet-client") && ext == ".pem":
		return treatment{exclude: holdsPrivateKey}
	case under(p, "/var/lib/cloud"):
		return treatment{exclude: holdsUserData}
	case under(p, "/etc/eks") || under(p, "/run/eks"):
		switch {
		case base == "environment":
			return treatment{format: envFile}
		case ext == ".json":
			return treatment{format: jsonDoc}
		case ext == ".yaml" || ext == ".yml":
			return treatment{format: yamlDoc}
		case ext == ".toml":
			return treatment{format: tomlDoc}
		}
		return treatment{exclude: holdsEKSData}
	case strings.Contains(base, "kubeconfig"):
		return treatment{format: yamlDoc}
	// Registry credentials in Docker's format: Docker's own, the kubelet's.
	case base == "config.json" && path.Base(path.Dir(p)) == ".docker", p == "/var/lib/kubelet/config.json", base == ".dockercfg":
		return treatment{format: jsonDoc}
	case under(p, "/etc/containerd") && ext == ".toml":
		return treatment{format: tomlDoc}
	case p == "/etc/environment":
		return treatment{format: envFile}
	case under(p, "/proc") && base == "environ":
		return treatment{format: environ}
	}
	return treatment{}
}

func under(p, dir string) bool { return strings.HasPrefix(p, dir+"/") }

// leftOut is the manifest's note for a credential file that does not
// parse: it is not written at all.
func leftOut(f format, err error) string {
	return fmt.Sprintf("left out: holds credentials and does not parse as %s, so it cannot be redacted safely: %v", f, err)
}
