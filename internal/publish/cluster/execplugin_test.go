package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/logging/logtest"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// Secrets a plugin may print to stderr (an AWS CLI debug dump); none may
// reach the log or the status.
const (
	canaryToken = "CANARY123"
	canaryKeyID = "AKIAIOSFODNN7CANARY1"
)

// hangingPlugin writes a plugin that prints secrets and more stderr than
// is kept, records its pid and its child's in dir/pids, and sleeps far
// past any timeout in a child process, as `sh -c 'sleep 100'` would.
func hangingPlugin(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "get-token")
	writeFile(t, path, []byte(`#!/bin/sh
echo $$ >> "`+dir+`/pids"
echo "error: token=`+canaryToken+` for key `+canaryKeyID+` (plugin-stderr-marker)" >&2
head -c 20000 /dev/zero | tr '\0' x >&2
sleep 100 &
echo $! >> "`+dir+`/pids"
wait
`))
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range pluginPIDs(t, dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return path
}

func pluginPIDs(t *testing.T, dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "pids"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// alive reports whether pid runs; a zombie waiting for a reaper is dead.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func execKubeconfig(t *testing.T, dir, server, command string) string {
	t.Helper()
	path := filepath.Join(dir, "kubeconfig")
	writeFile(t, path, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "`+server+`", insecure-skip-tls-verify: true}
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: `+command+`
      interactiveMode: Never
contexts:
- {name: x, context: {cluster: c, user: u}}
current-context: x
`))
	return path
}

// A plugin that hangs is killed with its child at the timeout, the call
// that needed it returns, and its failure is logged once with its stderr
// bounded and without the secrets in it. A caller with a shorter deadline
// returns at its deadline.
func TestExecPluginTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	var requests sync.Map
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Store(r.URL.String(), true)
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer srv.Close()
	kc := execKubeconfig(t, dir, srv.URL, hangingPlugin(t, dir))
	var logs logtest.Buffer
	const timeout = 500 * time.Millisecond
	creds, err := loadCredentials(context.Background(), &Config{Root: "/", ClusterSettings: config.ClusterSettings{ExecTimeout: timeout}}, kc, debugLogger(&logs))
	if err != nil {
		t.Fatal(err)
	}
	a, err := newRESTAPI(creds.config)
	if err != nil {
		t.Fatal(err)
	}
	call := func(ctx context.Context) error {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := a.listNode(ctx, "node-1")
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("the API call is still waiting for a plugin that sleeps 100 s")
			return nil
		}
	}
	gone := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for _, pid := range pluginPIDs(t, dir) {
			for alive(pid) {
				if time.Now().After(deadline) {
					t.Fatalf("plugin process %d still runs after the timeout", pid)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}

	err = call(context.Background())
	if !isCredentialError(err) || !strings.Contains(err.Error(), "timed out after "+timeout.String()) {
		t.Fatalf("call with a hung plugin: %v, want a credential error saying it timed out", err)
	}
	if n := len(pluginPIDs(t, dir)); n != 2 {
		t.Fatalf("%d pids recorded, want the plugin's and its child's", n)
	}
	gone()

	// The caller's deadline comes first: it returns then, and the run it
	// started is still killed at the timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = call(ctx)
	if !isCredentialError(err) || !strings.Contains(err.Error(), "has not answered yet") {
		t.Fatalf("call with a short deadline: %v, want a credential error saying the plugin has not answered", err)
	}
	waitUntil(t, 10*time.Second, "second run started", func() bool { return len(pluginPIDs(t, dir)) == 4 })
	gone()
	waitUntil(t, 10*time.Second, "second run logged", func() bool {
		return len(logs.Lines("exec credential plugin failed")) == 2
	})

	failed := logs.Lines("exec credential plugin failed")
	if !strings.Contains(failed[0], "level=ERROR") || !strings.Contains(failed[1], "level=DEBUG") {
		t.Errorf("want the first failure at error and the repeat at debug:\n%s", strings.Join(failed, "\n"))
	}
	line := failed[0]
	for _, want := range []string{"plugin-stderr-marker", "token=" + "[REDACTED]", "timed out after 500ms", "more bytes not kept"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %q: %s", want, line)
		}
	}
	if len(line) > execStderrLimit+1024 {
		t.Errorf("log line of %d bytes: stderr not bounded", len(line))
	}
	for _, secret := range []string{canaryToken, canaryKeyID} {
		if l := logs.Lines(secret); len(l) > 0 {
			t.Errorf("secret %s logged: %s", secret, l[0])
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("secret %s in the error: %v", secret, err)
		}
	}
	requests.Range(func(k, _ any) bool {
		t.Errorf("request %s sent without credentials", k)
		return true
	})
}

// A plugin that fails at once has its redacted last stderr line in the
// error, which reaches the status.
func TestExecPluginFailureNamesStderr(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "get-token")
	writeFile(t, path, []byte("#!/bin/sh\necho 'Unable to locate credentials; aws_secret_access_key="+canaryToken+"' >&2\nexit 255\n"))
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	var logs logtest.Buffer
	creds, err := loadCredentials(context.Background(), &Config{Root: "/", ClusterSettings: config.ClusterSettings{ExecTimeout: time.Minute}}, execKubeconfig(t, dir, "https://127.0.0.1:1", path), debugLogger(&logs))
	if err != nil {
		t.Fatal(err)
	}
	_, err = creds.exec.get(context.Background())
	if !isCredentialError(err) || !strings.Contains(err.Error(), "exit status 255: Unable to locate credentials") || strings.Contains(err.Error(), canaryToken) {
		t.Errorf("error %v: want the exit status and the redacted stderr", err)
	}
	if len(logs.Lines(canaryToken)) > 0 {
		t.Errorf("secret logged:\n%s", strings.Join(logs.Lines(canaryToken), "\n"))
	}
}

// The publisher whose plugin hangs says in its link that it cannot
// authenticate; once the plugin answers, it writes with the plugin's
// token and says it works again.
func TestPublisherShowsExecPluginFailure(t *testing.T) {
	dir := t.TempDir()
	hangingPlugin(t, dir)
	plugin := filepath.Join(dir, "plugin")
	writeFile(t, plugin, []byte(`#!/bin/sh
if [ -e "`+dir+`/fixed" ]; then
	echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"tok-123"}}'
	exit 0
fi
exec "`+dir+`/get-token"
`))
	if err := os.Chmod(plugin, 0o755); err != nil {
		t.Fatal(err)
	}
	var auth sync.Map
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"), true)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"kind":"Node","apiVersion":"v1","metadata":{"name":"node-1","uid":"uid-1"}}`)
	}))
	defer srv.Close()
	var logs logtest.Buffer
	p, err := New(Config{Kubeconfig: execKubeconfig(t, dir, srv.URL, plugin), NodeName: "node-1",
		ClusterSettings: config.ClusterSettings{NoWatch: true, ExecTimeout: 300 * time.Millisecond}, Logger: debugLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeFeedback{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Start(ctx, fb)
	p.Publish(publish.Update{Conditions: conds("", time.Now()), State: &state.State{}})

	waitUntil(t, 20*time.Second, "link says the publisher cannot authenticate", func() bool {
		l, _ := fb.last()
		return l.Unauthenticated && !l.Connected && strings.Contains(l.LastError, "timed out")
	})
	l, _ := fb.last()
	t.Logf("link: %+v", l)
	if strings.Contains(l.LastError, canaryToken) || strings.Contains(l.LastError, canaryKeyID) {
		t.Errorf("secret in the link's last error: %s", l.LastError)
	}
	if n := len(logs.Lines("level=ERROR")) + len(logs.Lines("level=WARN")); n != 1 {
		t.Errorf("%d error/warn lines, want the plugin's failure once:\n%s", n, strings.Join(append(logs.Lines("level=ERROR"), logs.Lines("level=WARN")...), "\n"))
	}

	writeFile(t, filepath.Join(dir, "fixed"), nil)
	waitUntil(t, 20*time.Second, "link connected again", func() bool {
		l, _ := fb.last()
		return l.Connected && !l.Unauthenticated && l.LastError == ""
	})
	if _, ok := auth.Load("Bearer tok-123"); !ok {
		t.Error("the write did not carry the plugin's token")
	}
	if len(logs.Lines("exec credential plugin works again")) != 1 {
		t.Error("recovery not logged")
	}
}

// The plugin's token is reused until it expires, and a 401 makes the next
// request run the plugin again.
func TestExecPluginTokenCachedUntilRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "get-token")
	writeFile(t, path, []byte(`#!/bin/sh
echo run >> "`+dir+`/runs"
echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"tok-'$(wc -l < "`+dir+`/runs")'"}}'
`))
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		n := len(seen)
		mu.Unlock()
		if n == 2 {
			http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}`)
	}))
	defer srv.Close()
	creds, err := loadCredentials(context.Background(), &Config{Root: "/", ClusterSettings: config.ClusterSettings{ExecTimeout: time.Minute}}, execKubeconfig(t, dir, srv.URL, path), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	a, err := newRESTAPI(creds.config)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		_, _ = a.listNode(context.Background(), "node-1")
	}
	want := []string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-2", "Bearer tok-2"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("Authorization headers %q, want %q", seen, want)
	}
}
