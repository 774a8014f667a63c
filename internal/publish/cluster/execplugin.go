package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/pkg/apis/clientauthentication"
	"k8s.io/client-go/pkg/apis/clientauthentication/install"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/nodehealthd/nodehealthd/internal/redact"
)

// DefaultExecTimeout bounds one run of a kubeconfig exec credential plugin
// (`aws eks get-token` answers in a second or two; a cold instance
// metadata service may take several).
const DefaultExecTimeout = 30 * time.Second

// Bounds on what a plugin may print: stdout is one ExecCredential, stderr
// goes to the log.
const (
	execStdoutLimit = 1 << 20
	execStderrLimit = 4 << 10
)

// execInfoEnv passes the ExecCredential request to the plugin.
const execInfoEnv = "KUBERNETES_EXEC_INFO"

var (
	execScheme = func() *runtime.Scheme {
		s := runtime.NewScheme()
		install.Install(s)
		return s
	}()
	execCodecs = serializer.NewCodecFactory(execScheme)
)

// execPlugin runs a kubeconfig's exec credential plugin itself rather than
// through client-go, whose authenticator runs it without a time limit
// while holding a lock every request waits on, and copies its stderr
// (which may hold secrets) to the daemon's stderr unfiltered. Each run is
// bounded and killed with its process group; callers wait for it no
// longer than their own context, and concurrent callers share one run.
type execPlugin struct {
	command string
	args    []string
	env     []string
	group   schema.GroupVersion
	timeout time.Duration
	// ctx ends with the publisher; a run in flight is killed then.
	ctx context.Context
	log *slog.Logger

	mu      sync.Mutex
	token   string
	expiry  time.Time // zero: valid until the API server answers 401
	run     *execRun  // in flight; nil when none
	failing bool      // the last run failed and was logged
}

type execRun struct {
	done  chan struct{}
	token string
	err   error
}

// credentialError says that no credentials could be obtained: the
// publisher cannot authenticate.
type credentialError struct{ msg string }

func (e *credentialError) Error() string { return e.msg }

func isCredentialError(err error) bool {
	var ce *credentialError
	return errors.As(err, &ce)
}

// newExecPlugin prepares the plugin of rc.ExecProvider; rc's cluster
// fields are passed to it when the kubeconfig asks for that.
func newExecPlugin(ctx context.Context, rc *rest.Config, timeout time.Duration, log *slog.Logger) (*execPlugin, error) {
	ec := rc.ExecProvider
	gv, err := schema.ParseGroupVersion(ec.APIVersion)
	if err != nil || gv.Group != clientauthentication.GroupName || !execScheme.IsVersionRegistered(gv) {
		return nil, fmt.Errorf("exec plugin: unsupported apiVersion %q", ec.APIVersion)
	}
	if ec.InteractiveMode == clientcmdapi.AlwaysExecInteractiveMode {
		return nil, fmt.Errorf("exec plugin %s needs a terminal (interactiveMode Always), which a daemon has not", ec.Command)
	}
	req := &clientauthentication.ExecCredential{}
	if ec.ProvideClusterInfo {
		if req.Spec.Cluster, err = rest.ConfigToExecCluster(rc); err != nil {
			return nil, err
		}
	}
	info, err := runtime.Encode(execCodecs.LegacyCodec(gv), req)
	if err != nil {
		return nil, fmt.Errorf("exec plugin: %w", err)
	}
	env := os.Environ()
	for _, e := range ec.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	env = append(env, execInfoEnv+"="+string(info))
	return &execPlugin{command: ec.Command, args: ec.Args, env: env, group: gv, timeout: timeout, ctx: ctx, log: log}, nil
}

// wrap is a rest.Config WrapTransport adding the plugin's token.
func (p *execPlugin) wrap(rt http.RoundTripper) http.RoundTripper {
	return &execTransport{p: p, base: rt}
}

type execTransport struct {
	p    *execPlugin
	base http.RoundTripper
}

func (t *execTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	token, err := t.p.get(req.Context())
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		t.p.forget(token)
	}
	return resp, err
}

// get returns a valid token, running the plugin when there is none.
func (p *execPlugin) get(ctx context.Context) (string, error) {
	p.mu.Lock()
	if p.token != "" && (p.expiry.IsZero() || time.Now().Before(p.expiry)) {
		t := p.token
		p.mu.Unlock()
		return t, nil
	}
	r := p.run
	if r == nil {
		r = &execRun{done: make(chan struct{})}
		p.run = r
		go p.runPlugin(r)
	}
	p.mu.Unlock()
	select {
	case <-r.done:
		return r.token, r.err
	case <-ctx.Done():
		return "", &credentialError{fmt.Sprintf("exec credential plugin %s has not answered yet (%v; it is killed after %v)", p.command, context.Cause(ctx), p.timeout)}
	}
}

// forget drops a token the API server refused, so that the next request
// runs the plugin again.
func (p *execPlugin) forget(token string) {
	p.mu.Lock()
	if p.token == token {
		p.token = ""
	}
	p.mu.Unlock()
}

func (p *execPlugin) runPlugin(r *execRun) {
	started := time.Now()
	token, expiry, stderr, err := p.exec()
	took := time.Since(started).Round(time.Millisecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.run = nil
	switch {
	case err != nil && p.ctx.Err() != nil:
		// The publisher is stopping; killing the plugin is no failure.
		r.err = &credentialError{fmt.Sprintf("exec credential plugin %s: stopped", p.command)}
	case err != nil:
		r.err = &credentialError{fmt.Sprintf("exec credential plugin %s: %v", p.command, err)}
		// Once per episode: a failing plugin is run again at every
		// retry of every request.
		level := slog.LevelError
		if p.failing {
			level = slog.LevelDebug
		}
		p.failing = true
		p.log.Log(context.Background(), level, "exec credential plugin failed: the cluster publisher cannot authenticate",
			"command", p.command, "err", err, "took", took, "stderr", stderr)
	default:
		if p.failing {
			p.log.Info("exec credential plugin works again", "command", p.command, "took", took)
		} else if stderr != "" {
			p.log.Debug("exec credential plugin wrote to stderr", "command", p.command, "stderr", stderr)
		}
		p.failing = false
		p.token, p.expiry, r.token = token, expiry, token
	}
	close(r.done)
}

// exec runs the plugin once and returns its token, and its stderr bounded
// and redacted for the log.
func (p *execPlugin) exec() (token string, expiry time.Time, stderr string, err error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.command, p.args...)
	cmd.Env = p.env
	out := &boundedBuffer{limit: execStdoutLimit}
	errOut := &boundedBuffer{limit: execStderrLimit}
	cmd.Stdout, cmd.Stderr = out, errOut
	// A process group of its own, so that the children of a shell script
	// die with it; Pdeathsig covers the daemon dying first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A child that outlives the plugin and keeps its stdout open must not
	// hold the run.
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	stderr = errOut.redacted()
	switch {
	case ctx.Err() != nil && p.ctx.Err() == nil:
		return "", time.Time{}, stderr, fmt.Errorf("timed out after %v; killed", p.timeout)
	case err != nil:
		if line := lastLine(stderr); line != "" {
			err = fmt.Errorf("%w: %s", err, line)
		}
		return "", time.Time{}, stderr, err
	case out.dropped > 0:
		return "", time.Time{}, stderr, fmt.Errorf("stdout longer than %d bytes", execStdoutLimit)
	}
	token, expiry, err = p.decode(out.buf.Bytes())
	return token, expiry, stderr, err
}

func (p *execPlugin) decode(stdout []byte) (string, time.Time, error) {
	cred := &clientauthentication.ExecCredential{}
	_, gvk, err := execCodecs.UniversalDecoder(p.group).Decode(stdout, nil, cred)
	switch {
	case err != nil:
		// The decoder may quote the output, which holds the token.
		return "", time.Time{}, errors.New("stdout is not an ExecCredential")
	case gvk.GroupVersion() != p.group:
		return "", time.Time{}, fmt.Errorf("answered in %s, configured for %s", gvk.GroupVersion(), p.group)
	case cred.Status == nil || cred.Status.Token == "":
		if cred.Status != nil && cred.Status.ClientCertificateData != "" {
			return "", time.Time{}, errors.New("returned a client certificate; only tokens are supported")
		}
		return "", time.Time{}, errors.New("returned no token")
	}
	var expiry time.Time
	if e := cred.Status.ExpirationTimestamp; e != nil {
		expiry = e.Time
	}
	return cred.Status.Token, expiry, nil
}

// boundedBuffer keeps the first limit bytes written and counts the rest,
// so that a plugin cannot fill the daemon's memory.
type boundedBuffer struct {
	buf     bytes.Buffer
	limit   int
	dropped int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	keep := min(len(p), b.limit-b.buf.Len())
	b.buf.Write(p[:keep])
	b.dropped += len(p) - keep
	return len(p), nil
}

// redacted returns the text with its credentials replaced. A line cut by
// the limit is dropped whole: its cut secret would not be recognised.
func (b *boundedBuffer) redacted() string {
	s := b.buf.Bytes()
	if b.dropped > 0 {
		i := bytes.LastIndexByte(s, '\n')
		s = s[:i+1]
	}
	r, _ := redact.Bytes(bytes.Clone(s))
	text := strings.TrimSpace(string(r))
	if b.dropped > 0 {
		text += fmt.Sprintf(" [%d more bytes not kept]", len(b.buf.Bytes())-len(s)+b.dropped)
	}
	return text
}

// lastLine is the plugin's last word, usually why it failed.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 256 {
		s = strings.ToValidUTF8(s[:256], "") + "…"
	}
	return s
}
