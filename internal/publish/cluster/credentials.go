package cluster

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/connrotation"

	"github.com/nodehealthd/nodehealthd/internal/host"
)

// KubeconfigPaths are where kubelets keep their kubeconfig, in the order
// they are tried (host paths, read under --root).
var KubeconfigPaths = []string{
	// Amazon Linux 2023 (nodeadm): exec plugin `aws eks get-token`.
	"/var/lib/kubelet/kubeconfig",
	// Bottlerocket: exec aws-iam-authenticator, or a rotated client cert.
	"/etc/kubernetes/kubelet/kubeconfig",
	// kubeadm: client cert /var/lib/kubelet/pki/kubelet-client-current.pem.
	"/etc/kubernetes/kubelet.conf",
}

// nodeUserPrefix is how the Node authorizer recognises a kubelet identity.
const nodeUserPrefix = "system:node:"

// findKubeconfig returns the kubeconfig to use. An explicit path is used as
// given (it is the daemon's own view, like every other flag); discovered
// ones are host paths under root. It returns "" when none exists yet.
func findKubeconfig(root, explicit string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", err
		}
		return explicit, nil
	}
	for _, p := range KubeconfigPaths {
		hp := host.Path(root, p)
		if _, err := os.Stat(hp); err == nil {
			return hp, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", fs.ErrNotExist
}

// credentials is a loaded kubeconfig.
type credentials struct {
	path   string
	config *rest.Config
	// kind describes the authentication for logs: "client certificate",
	// "bearer token", "token file", "exec plugin <command>".
	kind string
	// exec runs the exec credential plugin, if the kubeconfig names one.
	exec *execPlugin
	// certFile is the client certificate file (already under root) that
	// the kubelet rotates; "" when the certificate is inline or absent.
	certFile string
	keyFile  string
	// certNode is the node name in a system:node:<name> certificate CN.
	certNode string
	// dialer tracks connections so that they can be dropped when the
	// certificate rotates: a TLS connection keeps presenting the
	// certificate of its handshake for as long as it lives.
	dialer *connrotation.Dialer
	stamp  fileStamp
}

// loadCredentials reads a kubeconfig written by the host's kubelet. Every
// file it names is a host path, so absolute paths are read under cfg.Root
// and relative ones next to the kubeconfig (as kubectl does); an absolute
// exec plugin command is run from under the root too, for at most
// cfg.ExecTimeout, and killed when ctx ends.
func loadCredentials(ctx context.Context, cfg *Config, path string, log *slog.Logger) (*credentials, error) {
	root := cfg.Root
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st := stampOf(path)
	kc, err := clientcmd.Load(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	base := filepath.Dir(path)
	reRoot := func(p *string) {
		switch {
		case *p == "":
		case filepath.IsAbs(*p):
			*p = host.Path(root, *p)
		default:
			*p = filepath.Join(base, *p)
		}
	}
	for _, c := range kc.Clusters {
		reRoot(&c.CertificateAuthority)
	}
	for _, a := range kc.AuthInfos {
		reRoot(&a.ClientCertificate)
		reRoot(&a.ClientKey)
		reRoot(&a.TokenFile)
		// A bare command name is looked up in PATH, like the kubelet does.
		if a.Exec != nil && strings.ContainsRune(a.Exec.Command, filepath.Separator) {
			reRoot(&a.Exec.Command)
		}
	}
	rc, err := clientcmd.NewDefaultClientConfig(*kc, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := &credentials{path: path, config: rc, stamp: st}
	if rc.ExecProvider != nil && (rc.BearerToken != "" || rc.BearerTokenFile != "" || rc.Username != "" || len(rc.CertData) > 0 || rc.CertFile != "") {
		// Like client-go: credentials given outright win over the plugin.
		rc.ExecProvider = nil
	}
	switch {
	case rc.ExecProvider != nil:
		c.exec, err = newExecPlugin(ctx, rc, cfg.ExecTimeout, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rc.ExecProvider, rc.WrapTransport = nil, c.exec.wrap
		c.kind = "exec plugin " + c.exec.command
	case len(rc.CertData) > 0 || rc.CertFile != "":
		c.kind = "client certificate"
	case rc.BearerTokenFile != "":
		c.kind = "token file"
	case rc.BearerToken != "":
		c.kind = "bearer token"
	default:
		c.kind = "no credentials"
	}
	certPEM := rc.CertData
	if len(certPEM) == 0 && rc.CertFile != "" {
		// client-go reloads a certificate given as files on every new
		// connection; inline data would freeze the rotated certificate.
		c.certFile, c.keyFile = rc.CertFile, rc.KeyFile
		certPEM, err = os.ReadFile(rc.CertFile)
		if err != nil {
			return nil, fmt.Errorf("%s: client certificate: %w", path, err)
		}
	}
	if len(certPEM) > 0 {
		c.certNode = nodeFromCert(certPEM)
	}
	c.dialer = connrotation.NewDialer((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	rc.Dial = c.dialer.DialContext
	rc.UserAgent = cfg.UserAgent
	// The write budget is ours; client-go's limiter would only add delay.
	rc.QPS, rc.Burst = 50, 100
	return c, nil
}

// nodeFromCert returns <name> of a "system:node:<name>" certificate
// subject, or "".
func nodeFromCert(certPEM []byte) string {
	for {
		var blk *pem.Block
		blk, certPEM = pem.Decode(certPEM)
		if blk == nil {
			return ""
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return ""
		}
		name, ok := strings.CutPrefix(cert.Subject.CommonName, nodeUserPrefix)
		if !ok {
			return ""
		}
		return name
	}
}

// fileStamp identifies a version of a file cheaply; the kubelet replaces
// its certificate by re-pointing a symlink, which changes the inode.
type fileStamp struct {
	ino     uint64
	size    int64
	modTime time.Time
	exists  bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	s := fileStamp{size: fi.Size(), modTime: fi.ModTime(), exists: true}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = uint64(st.Ino)
	}
	return s
}
