package cluster

import (
	"bufio"
	"bytes"
	"os"
	"strings"

	"github.com/nodehealthd/nodehealthd/internal/host"
)

// KubeletEnvironment is where nodeadm (Amazon Linux 2023) writes the
// kubelet's flags, --hostname-override among them.
const KubeletEnvironment = "/etc/eks/kubelet/environment"

// Node name sources, for the log line that says which one was used.
const (
	SourceFlag        = "--node-name"
	SourceEnvironment = KubeletEnvironment + " --hostname-override"
	SourceCertificate = "client certificate CN"
	SourceHostname    = "hostname"
)

// resolveNodeName decides which Node the daemon writes to: the flag, else
// the kubelet's --hostname-override, else the name in the kubelet's client
// certificate, else the hostname (what the kubelet itself falls back to).
// Names are lower-cased as the kubelet does.
func resolveNodeName(root, flag, certNode string) (name, source string) {
	if flag != "" {
		return flag, SourceFlag
	}
	if b, err := os.ReadFile(host.Path(root, KubeletEnvironment)); err == nil {
		if n := hostnameOverride(b); n != "" {
			return normalizeNodeName(n), SourceEnvironment
		}
	}
	if certNode != "" {
		return certNode, SourceCertificate
	}
	return normalizeNodeName(hostname(root)), SourceHostname
}

func normalizeNodeName(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// hostname reads the host's hostname under root, falling back to ours
// (they are the same when root is "/").
func hostname(root string) string {
	if root != "" && root != "/" {
		if b, err := os.ReadFile(host.Path(root, "/proc/sys/kernel/hostname")); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b))
		}
	}
	h, _ := os.Hostname()
	return h
}

// hostnameOverride finds --hostname-override in an environment file of
// shell assignments. The flag can sit inside any variable
// (NODEADM_KUBELET_ARGS, KUBELET_ARGS, KUBELET_EXTRA_ARGS), written as
// --hostname-override=X or --hostname-override X; the last one wins, as
// with the kubelet's own flag parsing.
func hostnameOverride(env []byte) string {
	var found string
	sc := bufio.NewScanner(bytes.NewReader(env))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		_, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		// The assignment is shell syntax ("a b" is one value); the
		// value is word-split again where the unit expands it.
		var words []string
		for _, v := range shellWords(value) {
			words = append(words, shellWords(v)...)
		}
		for i, w := range words {
			for _, flag := range []string{"--hostname-override", "-hostname-override"} {
				if v, ok := strings.CutPrefix(w, flag+"="); ok && v != "" {
					found = v
				} else if w == flag && i+1 < len(words) {
					found = words[i+1]
				}
			}
		}
	}
	return found
}

// shellWords splits a shell value into words, honouring single and double
// quotes and backslashes; it is enough for systemd EnvironmentFile and
// sourced env files, which is what holds kubelet flags.
func shellWords(s string) []string {
	var (
		words []string
		cur   strings.Builder
		in    bool
		quote rune
	)
	flush := func() {
		if in {
			words = append(words, cur.String())
			cur.Reset()
			in = false
		}
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else if r == '\\' && quote == '"' && i+1 < len(rs) {
				i++
				cur.WriteRune(rs[i])
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			in = true
		case r == ' ' || r == '\t':
			flush()
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	flush()
	return words
}
