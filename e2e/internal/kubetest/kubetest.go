//go:build linux

// Package kubetest runs a real etcd and kube-apiserver on loopback for
// end-to-end tests: Node and RBAC authorization with the NodeRestriction
// admission plugin, as in a real cluster, so that a node identity gets
// exactly the rights a kubelet has. The binaries come from KUBE_BIN_DIR
// (scripts/kube-bins.sh builds them).
package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// BinDir returns the directory with etcd and kube-apiserver, or a reason
// why there is none.
func BinDir() (string, error) {
	dir := os.Getenv("KUBE_BIN_DIR")
	if dir == "" {
		return "", errors.New("KUBE_BIN_DIR is not set (export KUBE_BIN_DIR=$(scripts/kube-bins.sh))")
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("KUBE_BIN_DIR=%s has no executable %s (run scripts/kube-bins.sh)", dir, b)
		}
	}
	return dir, nil
}

// Token is a static bearer token the API server accepts.
type Token struct {
	Token, User, UID string
	Groups           []string
}

// Options configure a Cluster.
type Options struct {
	// Tokens go into --token-auth-file.
	Tokens []Token
}

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	Dir  string
	Host string // https://127.0.0.1:<port>
	CA   *CA
	// AuditLog records every request (level Metadata): who, what, when.
	AuditLog string
	Admin    *corev1client.CoreV1Client
	AdminCfg *rest.Config

	bin       string
	etcd      *exec.Cmd
	apiserver *exec.Cmd
	exited    chan struct{} // closed when apiserver has exited
	kasArgs   []string
	kasLog    *os.File
	mu        sync.Mutex
}

// Start runs etcd and kube-apiserver in dir and waits until the API server
// is ready and the default namespace exists.
func Start(dir string, opts Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: bin}
	if err := c.start(opts); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(opts Options) error {
	ca, err := newCA()
	if err != nil {
		return err
	}
	c.CA = ca
	srv, err := ca.serverCert()
	if err != nil {
		return err
	}
	admin, err := ca.ClientCert("e2e-admin", "system:masters")
	if err != nil {
		return err
	}
	saPriv, saPub, err := serviceAccountKeys()
	if err != nil {
		return err
	}
	pki := filepath.Join(c.Dir, "pki")
	files := map[string][]byte{
		"ca.crt": ca.CertPEM, "apiserver.crt": srv.CertPEM, "apiserver.key": srv.KeyPEM,
		"sa.key": saPriv, "sa.pub": saPub,
	}
	var tokens bytes.Buffer
	for _, t := range opts.Tokens {
		fmt.Fprintf(&tokens, "%s,%s,%s,%q\n", t.Token, t.User, t.UID, strings.Join(t.Groups, ","))
	}
	files["tokens.csv"] = tokens.Bytes()
	files["audit-policy.yaml"] = []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(pki, name), b, 0o600); err != nil {
			return err
		}
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	c.Host = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	c.AuditLog = filepath.Join(c.Dir, "audit.log")

	etcdLog, err := os.Create(filepath.Join(c.Dir, "etcd.log"))
	if err != nil {
		return err
	}
	c.etcd = command(filepath.Join(c.bin, "etcd"), etcdLog,
		"--name=e2e", "--data-dir="+filepath.Join(c.Dir, "etcd-data"),
		"--listen-client-urls="+etcdClient, "--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer, "--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=e2e="+etcdPeer, "--unsafe-no-fsync", "--log-level=warn")
	if err := c.etcd.Start(); err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	c.kasArgs = []string{
		"--etcd-servers=" + etcdClient,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(ports[2]),
		"--tls-cert-file=" + filepath.Join(pki, "apiserver.crt"), "--tls-private-key-file=" + filepath.Join(pki, "apiserver.key"),
		"--client-ca-file=" + filepath.Join(pki, "ca.crt"),
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--service-account-key-file=" + filepath.Join(pki, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(pki, "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.0.0.0/24",
		// A loopback advertise address is refused by the endpoint
		// reconciler, which the tests do not need.
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(c.Dir, "kas-certs"),
		"--token-auth-file=" + filepath.Join(pki, "tokens.csv"),
		"--audit-policy-file=" + filepath.Join(pki, "audit-policy.yaml"),
		"--audit-log-path=" + c.AuditLog,
		"--audit-log-mode=blocking",
	}
	c.kasLog, err = os.Create(filepath.Join(c.Dir, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	c.AdminCfg = &rest.Config{
		Host:            c.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca.CertPEM, CertData: admin.CertPEM, KeyData: admin.KeyPEM},
		QPS:             100, Burst: 200,
	}
	if c.Admin, err = corev1client.NewForConfig(c.AdminCfg); err != nil {
		return err
	}
	return c.StartAPIServer()
}

func command(path string, log *os.File, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// The servers must not outlive a test binary that dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// StartAPIServer (re)starts kube-apiserver with the same flags and waits
// for it to be ready.
func (c *Cluster) StartAPIServer() error {
	c.mu.Lock()
	p := command(filepath.Join(c.bin, "kube-apiserver"), c.kasLog, c.kasArgs...)
	err := p.Start()
	exited := make(chan struct{})
	if err == nil {
		c.apiserver, c.exited = p, exited
		go func() { _ = p.Wait(); close(exited) }()
	}
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start kube-apiserver: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		select {
		case <-exited:
			return fmt.Errorf("kube-apiserver exited: %s (log %s)", p.ProcessState, c.kasLog.Name())
		default:
		}
		_, last = c.Admin.RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if last == nil {
			if _, last = c.Admin.Namespaces().Get(ctx, "default", metav1.GetOptions{}); last == nil {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver not ready within 90s: %v (log %s)", last, c.kasLog.Name())
}

// StopAPIServer stops kube-apiserver (etcd keeps running), as an outage.
func (c *Cluster) StopAPIServer() error {
	c.mu.Lock()
	p, exited := c.apiserver, c.exited
	c.apiserver = nil
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = p.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = p.Process.Kill()
		<-exited
	}
	return nil
}

// Stop ends both servers.
func (c *Cluster) Stop() {
	_ = c.StopAPIServer()
	if c.etcd != nil && c.etcd.Process != nil {
		_ = c.etcd.Process.Kill()
		_ = c.etcd.Wait()
	}
	if c.kasLog != nil {
		c.kasLog.Close()
	}
}

// APIServerPID returns kube-apiserver's process ID, 0 when stopped.
func (c *Cluster) APIServerPID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver == nil || c.apiserver.Process == nil {
		return 0
	}
	return c.apiserver.Process.Pid
}

// Client returns a core/v1 client for a certificate identity.
func (c *Cluster) Client(id Issued) (*corev1client.CoreV1Client, error) {
	return corev1client.NewForConfig(&rest.Config{
		Host:            c.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CA.CertPEM, CertData: id.CertPEM, KeyData: id.KeyPEM},
	})
}

// User is how a kubeconfig authenticates. Paths are written as given.
type User struct {
	CertFile, KeyFile string
	Token             string
	ExecCommand       string
	ExecArgs          []string
}

// WriteKubeconfig writes a kubeconfig for user, with the CA at caFile
// (written there too when caWriteTo is not empty: tests put it under a
// fixture root while the kubeconfig names the host path).
func (c *Cluster) WriteKubeconfig(path, caFile, caWriteTo string, u User) error {
	if caWriteTo != "" {
		if err := os.MkdirAll(filepath.Dir(caWriteTo), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(caWriteTo, c.CA.CertPEM, 0o644); err != nil {
			return err
		}
	}
	ai := &clientcmdapi.AuthInfo{ClientCertificate: u.CertFile, ClientKey: u.KeyFile, Token: u.Token}
	if u.ExecCommand != "" {
		ai.Exec = &clientcmdapi.ExecConfig{
			APIVersion:      "client.authentication.k8s.io/v1",
			Command:         u.ExecCommand,
			Args:            u.ExecArgs,
			InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthority: caFile}
	cfg.AuthInfos["node"] = ai
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "node"}
	cfg.CurrentContext = "e2e"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, path)
}

// AuditEvent is the part of an audit record the tests read.
type AuditEvent struct {
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	UserAgent string `json:"userAgent"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestReceived time.Time `json:"requestReceivedTimestamp"`
	StageTimestamp  time.Time `json:"stageTimestamp"`
}

// Requests returns one audit event per request (its last stage) made by
// user, in the order they were received.
func (c *Cluster) Requests(user string) ([]AuditEvent, error) {
	f, err := os.Open(c.AuditLog)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	byID := map[string]int{}
	var out []AuditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var ev AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			continue
		}
		if ev.User.Username != user {
			continue
		}
		if i, ok := byID[ev.AuditID]; ok {
			out[i] = ev
			continue
		}
		byID[ev.AuditID] = len(out)
		out = append(out, ev)
	}
	return out, sc.Err()
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
