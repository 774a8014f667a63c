package nodediag

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/nodehealthd/nodehealthd/internal/capture"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/diag"
)

const node = "node-a"

// fakeAPI is the API server for one object: patches change it and are
// delivered to the watch, as the real one does.
type fakeAPI struct {
	mu      sync.Mutex
	obj     *NodeDiagnostic
	patches [][]CaptureStatus
	listErr error
	lists   int
	w       *watch.FakeWatcher
}

func (f *fakeAPI) list(context.Context, string) (*NodeDiagnosticList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.listErr != nil {
		return nil, f.listErr
	}
	l := &NodeDiagnosticList{}
	l.ResourceVersion = "1"
	if f.obj != nil {
		l.Items = []NodeDiagnostic{*f.obj.DeepCopy()}
	}
	return l, nil
}

func (f *fakeAPI) watch(context.Context, string, string, time.Duration) (watch.Interface, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.w = watch.NewFakeWithChanSize(100, false)
	return f.w, nil
}

func (f *fakeAPI) patchStatus(_ context.Context, _ string, st []CaptureStatus) (*NodeDiagnostic, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.patches = append(f.patches, st)
	f.obj.Status.CaptureStatuses = st
	if f.w != nil {
		f.w.Modify(f.obj.DeepCopy())
	}
	return f.obj.DeepCopy(), nil
}

// update replaces the object as an operator would.
func (f *fakeAPI) update(fn func(*NodeDiagnostic)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.obj)
	if f.w != nil {
		f.w.Modify(f.obj.DeepCopy())
	}
}

func (f *fakeAPI) allPatches() [][]CaptureStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.patches)
}

func request(uid string, gen int64, dest string, categories ...string) *NodeDiagnostic {
	d := &NodeDiagnostic{Spec: Spec{LogCapture: &LogCapture{Destination: dest, Categories: categories}}}
	d.Name, d.UID, d.Generation = node, types.UID(uid), gen
	return d
}

// fakeCollector is a stand-in for nodehealthctl collect: it writes a
// bundle, appends its arguments to a log and prints its result line.
func fakeCollector(t *testing.T, errs int) (*capture.Collector, string) {
	t.Helper()
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$*\" >> " + calls + "\nout=\"\"\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in -o) out=\"$2\"; shift;; esac\n  shift\ndone\n" +
		"printf 'bundle' > \"$out\"\nprintf '{\"path\":\"%s\",\"bytes\":6,\"items\":4,\"errors\":" + string(rune('0'+errs)) + ",\"complete\":true}\\n' \"$out\"\n"
	p := filepath.Join(dir, "nodehealthctl")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := capture.NewCollector(p, slog.New(slog.DiscardHandler))
	c.LowerPriority = func() error { return nil }
	return c, calls
}

func calls(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

// uploads is a presigned-URL stand-in counting the PUTs it accepts.
type uploads struct {
	mu     sync.Mutex
	bodies []string
	fail   []int // status codes to answer first, in order
}

func (u *uploads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	defer u.mu.Unlock()
	if r.Method != http.MethodPut {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if len(u.fail) > 0 {
		code := u.fail[0]
		u.fail = u.fail[1:]
		w.WriteHeader(code)
		io.WriteString(w, "<Error><Code>SignatureDoesNotMatch</Code><Message>denied</Message><SignatureProvided>SECRETSIG</SignatureProvided></Error>")
		return
	}
	u.bodies = append(u.bodies, string(b))
}

func (u *uploads) count() int { u.mu.Lock(); defer u.mu.Unlock(); return len(u.bodies) }

type harness struct {
	api      *fakeAPI
	srv      *Server
	calls    string
	stateDir string
	cfg      config.Diagnostics
	cancel   context.CancelFunc
}

func newHarness(t *testing.T, obj *NodeDiagnostic, stateDir string, errs int) *harness {
	t.Helper()
	col, callLog := fakeCollector(t, errs)
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	h := &harness{api: &fakeAPI{obj: obj}, calls: callLog, stateDir: stateDir}
	h.cfg = config.Diagnostics{Dir: t.TempDir(), Requests: config.Requests{NodeDir: filepath.Join(t.TempDir(), "support")}}
	h.srv = New(Options{Collector: col, StateDir: stateDir, Log: slog.New(slog.DiscardHandler),
		sleep: func(ctx context.Context, _ time.Duration) bool { return ctx.Err() == nil }}, h.cfg)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	t.Cleanup(cancel)
	h.srv.Start(ctx)
	h.srv.attach(ctx, h.api, node)
	return h
}

// logState is the Log entry of the object's status.
func (h *harness) logState() *CaptureState {
	h.api.mu.Lock()
	defer h.api.mu.Unlock()
	if st := h.api.obj.Status.logStatus(); st != nil {
		s := st.State
		return &s
	}
	return nil
}

func (h *harness) completed(t *testing.T, gen int64) *Completed {
	t.Helper()
	var c *Completed
	waitFor(t, "completed status", func() bool {
		st := h.logState()
		if st != nil && st.Completed != nil && st.Completed.ObservedGeneration == gen {
			c = st.Completed
			return true
		}
		return false
	})
	return c
}

func TestSections(t *testing.T) {
	for _, tc := range []struct {
		cats []string
		want []string
	}{
		{nil, nil},
		{[]string{"All"}, nil},
		{[]string{"Base", "All"}, nil},
		{[]string{"Base"}, []string{"nodehealthd", "system"}},
		{[]string{"Networking"}, []string{"network", "nodehealthd"}},
		{[]string{"Device"}, []string{"gpu", "neuron", "nodehealthd", "storage"}},
		{[]string{"Runtime"}, []string{"containerd", "journal", "kubernetes", "nodehealthd"}},
		{[]string{"System", "Base"}, []string{"journal", "kernel", "nodehealthd", "storage", "system"}},
	} {
		got, err := Sections(tc.cats)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Sections(%q) = %q, %v; want %q", tc.cats, got, err, tc.want)
		}
	}
	if _, err := Sections([]string{"Base", "Kernel"}); err == nil || !strings.Contains(err.Error(), `"Kernel"`) {
		t.Errorf("unknown category: %v", err)
	}
}

// TestCategorySectionsExist keeps the mapping in step with the bundle's
// sections: a section renamed in internal/diag would silently drop a
// category's content.
func TestCategorySectionsExist(t *testing.T) {
	for cat, secs := range CategorySections {
		if err := diag.CheckSections(secs); err != nil {
			t.Errorf("%s: %v", cat, err)
		}
	}
	if err := diag.CheckSections(alwaysSections); err != nil {
		t.Error(err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://bucket.s3.amazonaws.com/k/node.tar.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAX&X-Amz-Signature=abc": "https://bucket.s3.amazonaws.com/k/node.tar.gz?REDACTED",
		"https://user:pw@host/p":  "https://host/p",
		"http://127.0.0.1:80/x":   "http://127.0.0.1:80/x",
		"https://host/p?#frag":    "https://host/p?REDACTED",
		"https://ho st/?sig=SECR": "(unparsable URL)",
		"node":                    "node",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckDestination(t *testing.T) {
	for _, ok := range []string{"node", "https://h/p?X-Amz-Signature=s", "http://127.0.0.1:1/x"} {
		if err := checkDestination(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Node", "s3://bucket/key?sig=SECRET", "/var/log/x", "https:///p?sig=SECRET"} {
		err := checkDestination(bad)
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func noWait(ctx context.Context, _ time.Duration) bool { return ctx.Err() == nil }

func TestPutRetriesServerErrorsOnly(t *testing.T) {
	u := &uploads{fail: []int{503, 500}}
	ts := httptest.NewServer(u)
	defer ts.Close()
	f := filepath.Join(t.TempDir(), "b.tar.gz")
	os.WriteFile(f, []byte("bundle"), 0o600)
	n, err := put(context.Background(), ts.Client(), ts.URL+"/k?X-Amz-Signature=SECRETSIG", f, noWait)
	if err != nil || n != 3 || u.count() != 1 || u.bodies[0] != "bundle" {
		t.Fatalf("put after two 5xx: attempts %d, err %v, bodies %q", n, err, u.bodies)
	}
	u.fail = []int{403, 403}
	n, err = put(context.Background(), ts.Client(), ts.URL+"/k?X-Amz-Signature=SECRETSIG", f, noWait)
	if err == nil || n != 1 || !strings.Contains(err.Error(), "SignatureDoesNotMatch") || strings.Contains(err.Error(), "SECRETSIG") {
		t.Fatalf("403: attempts %d, err %v; want one attempt, the S3 code, no signature", n, err)
	}
	// A network failure: url.Error quotes the whole URL.
	ts.Close()
	n, err = put(context.Background(), http.DefaultClient, ts.URL+"/k?X-Amz-Signature=SECRETSIG", f, noWait)
	if err == nil || n != uploadAttempts || strings.Contains(err.Error(), "SECRETSIG") {
		t.Fatalf("closed server: attempts %d, err %v", n, err)
	}
}

func TestUploadTimeoutGrowsWithSize(t *testing.T) {
	if uploadTimeout(1<<10) != uploadBase || uploadTimeout(100<<20) <= uploadBase || uploadTimeout(1<<40) != uploadMax {
		t.Fatalf("timeouts %v %v %v", uploadTimeout(1<<10), uploadTimeout(100<<20), uploadTimeout(1<<40))
	}
}

// TestStatusRunningThenCompleted follows a request to a presigned URL: the
// status goes running, then completed/Success with the generation, the
// bundle is uploaded once with the requested sections, and another
// writer's Packet entry survives.
func TestStatusRunningThenCompleted(t *testing.T) {
	u := &uploads{}
	ts := httptest.NewServer(u)
	defer ts.Close()
	obj := request("uid-1", 3, ts.URL+"/b.tar.gz?X-Amz-Signature=SECRETSIG", "Networking")
	other := CaptureStatus{Type: TypePacket, State: CaptureState{Completed: &Completed{Reason: ReasonSuccess, ObservedGeneration: 1}}}
	obj.Status.CaptureStatuses = []CaptureStatus{other}
	h := newHarness(t, obj, "", 0)
	c := h.completed(t, 3)
	if c.Reason != ReasonSuccess || c.StartedAt.IsZero() || c.FinishedAt.Before(&c.StartedAt) {
		t.Fatalf("completed %+v", c)
	}
	if strings.Contains(c.Message, "SECRETSIG") || !strings.Contains(c.Message, "?REDACTED") || !strings.Contains(c.Message, "network,nodehealthd") {
		t.Fatalf("message %q: want the redacted URL and the sections", c.Message)
	}
	ps := h.api.allPatches()
	if len(ps) != 2 || ps[0][1].State.Running == nil || ps[1][1].State.Completed == nil {
		t.Fatalf("patches %+v: want running then completed", ps)
	}
	for _, p := range ps {
		if p[0].Type != TypePacket || p[0].State.Completed == nil || *p[0].State.Completed != *other.State.Completed {
			t.Fatalf("Packet entry lost: %+v", p)
		}
	}
	if u.count() != 1 {
		t.Fatalf("uploads %d", u.count())
	}
	if cl := calls(t, h.calls); len(cl) != 1 || !strings.Contains(cl[0], "--sections network,nodehealthd") || !strings.Contains(cl[0], "--node "+node) {
		t.Fatalf("collector calls %q", cl)
	}
	// Uploaded bundles do not stay on the node.
	if left, _ := filepath.Glob(filepath.Join(h.cfg.Dir, "nodediagnostic-*")); len(left) != 0 {
		t.Fatalf("left on the node: %v", left)
	}
	// The spec changes: a new capture.
	h.api.update(func(d *NodeDiagnostic) { d.Generation = 4 })
	h.completed(t, 4)
	if u.count() != 2 || len(calls(t, h.calls)) != 2 {
		t.Fatalf("after the spec change: uploads %d", u.count())
	}
}

func TestResults(t *testing.T) {
	t.Run("SuccessWithErrors", func(t *testing.T) {
		u := &uploads{}
		ts := httptest.NewServer(u)
		defer ts.Close()
		h := newHarness(t, request("u", 1, ts.URL+"/x"), "", 2)
		if c := h.completed(t, 1); c.Reason != ReasonSuccessWithErrors || !strings.Contains(c.Message, "2 items failed") {
			t.Fatalf("completed %+v", c)
		}
	})
	t.Run("UploadRefused", func(t *testing.T) {
		u := &uploads{fail: []int{403}}
		ts := httptest.NewServer(u)
		defer ts.Close()
		h := newHarness(t, request("u", 1, ts.URL+"/x?X-Amz-Signature=SECRETSIG"), "", 0)
		c := h.completed(t, 1)
		if c.Reason != ReasonFailure || !strings.Contains(c.Message, "403") || strings.Contains(c.Message, "SECRETSIG") {
			t.Fatalf("completed %+v", c)
		}
		// It is kept on the node, where the message says.
		if left, _ := filepath.Glob(filepath.Join(h.cfg.Dir, "nodediagnostic-*")); len(left) != 1 || !strings.Contains(c.Message, left[0]) {
			t.Fatalf("kept %v, message %q", left, c.Message)
		}
	})
	t.Run("UnknownCategory", func(t *testing.T) {
		h := newHarness(t, request("u", 1, "node", "Kernel"), "", 0)
		if c := h.completed(t, 1); c.Reason != ReasonFailure || !strings.Contains(c.Message, `unknown category "Kernel"`) {
			t.Fatalf("completed %+v", c)
		}
		if cl := calls(t, h.calls); len(cl) != 0 {
			t.Fatalf("collected anyway: %q", cl)
		}
	})
	t.Run("BadDestination", func(t *testing.T) {
		h := newHarness(t, request("u", 1, "s3://bucket/key?sig=SECRET"), "", 0)
		if c := h.completed(t, 1); c.Reason != ReasonFailure || strings.Contains(c.Message, "SECRET") {
			t.Fatalf("completed %+v", c)
		}
	})
}

// TestDestinationNode leaves the bundle where the reference agent does,
// and removes it after RemoveAfter.
func TestDestinationNode(t *testing.T) {
	h := newHarness(t, request("u", 1, "node", "Base"), "", 0)
	h.srv.opts.RemoveAfter = 300 * time.Millisecond
	c := h.completed(t, 1)
	path := filepath.Join(h.cfg.Requests.Dir(), node+"-logs.tar.gz")
	if c.Reason != ReasonSuccess || !strings.Contains(c.Message, path) {
		t.Fatalf("completed %+v", c)
	}
	waitFor(t, "bundle removed", func() bool { _, err := os.Stat(path); return errors.Is(err, os.ErrNotExist) })
}

// TestNotRerunAfterRestart: the reference agent captures again on every
// restart; the daemon decides from the status's observedGeneration and
// its own record.
func TestNotRerunAfterRestart(t *testing.T) {
	u := &uploads{}
	ts := httptest.NewServer(u)
	defer ts.Close()
	dest := ts.URL + "/x"
	stateDir := t.TempDir()
	h := newHarness(t, request("uid-1", 2, dest), stateDir, 0)
	done := h.completed(t, 2)
	h.cancel()

	t.Run("StatusSaysCompleted", func(t *testing.T) {
		obj := request("uid-1", 2, dest)
		obj.Status.CaptureStatuses = []CaptureStatus{{Type: TypeLog, State: CaptureState{Completed: done}}}
		// A packet capture too: its refusal is written in the step that
		// decides about the log capture, so it shows the decision was made.
		obj.Spec.PacketCapture = &struct{}{}
		h := newHarness(t, obj, t.TempDir(), 0) // no record
		waitFor(t, "packet capture refused", func() bool { return len(h.api.allPatches()) >= 1 })
		time.Sleep(200 * time.Millisecond) // a capture started would have run its collector by now
		if cl := calls(t, h.calls); len(cl) != 0 || len(h.api.allPatches()) != 1 {
			t.Fatalf("captured again: %q, patches %d", cl, len(h.api.allPatches()))
		}
	})
	t.Run("RecordSaysCompleted", func(t *testing.T) {
		// The status write was lost (the daemon died first): the object
		// still says running.
		obj := request("uid-1", 2, dest)
		obj.Status.CaptureStatuses = []CaptureStatus{{Type: TypeLog, State: CaptureState{Running: &Running{StartedAt: done.StartedAt}}}}
		h := newHarness(t, obj, stateDir, 0)
		c := h.completed(t, 2)
		if cl := calls(t, h.calls); len(cl) != 0 || c.Reason != done.Reason || c.Message != done.Message {
			t.Fatalf("captured again (%q), or status %+v not the recorded %+v", cl, c, done)
		}
	})
	t.Run("RecreatedObject", func(t *testing.T) {
		h := newHarness(t, request("uid-2", 2, dest), stateDir, 0)
		h.completed(t, 2)
		if cl := calls(t, h.calls); len(cl) != 1 {
			t.Fatalf("a new object with the same generation: %d captures, want 1", len(cl))
		}
	})
	if u.count() != 2 {
		t.Fatalf("uploads %d, want 2 (the first request and the recreated object)", u.count())
	}
}

func TestPacketCaptureRefused(t *testing.T) {
	obj := request("u", 5, "node")
	obj.Spec.LogCapture = nil
	obj.Spec.PacketCapture = &struct{}{}
	h := newHarness(t, obj, "", 0)
	waitFor(t, "packet status", func() bool { return len(h.api.allPatches()) == 1 })
	p := h.api.allPatches()[0]
	if len(p) != 1 || p[0].Type != TypePacket || p[0].State.Completed == nil || p[0].State.Completed.Reason != ReasonFailure ||
		p[0].State.Completed.ObservedGeneration != 5 || !strings.Contains(p[0].State.Completed.Message, "not supported") {
		t.Fatalf("patch %+v", p)
	}
}

func TestRequestsOff(t *testing.T) {
	h := newHarness(t, request("u", 1, "node"), "", 0)
	h.completed(t, 1)
	off := false
	cfg := h.cfg
	cfg.Requests.Enabled = &off
	h.srv.Configure(cfg)
	h.api.update(func(d *NodeDiagnostic) { d.Generation = 2 })
	h.srv.signal()
	h.api.mu.Lock()
	lists := h.api.lists
	h.api.mu.Unlock()
	if cl := calls(t, h.calls); len(cl) != 1 {
		t.Fatalf("captured while off: %q", cl)
	}
	h.srv.Configure(h.cfg)
	h.completed(t, 2)
	h.api.mu.Lock()
	defer h.api.mu.Unlock()
	if h.api.lists != lists+1 {
		t.Fatalf("lists %d, then %d: want one more when switched on", lists, h.api.lists)
	}
}

// TestMissingCRDIsQuiet: a cluster without the CRD is retried slowly and
// logged once, not an error storm.
func TestMissingCRDIsQuiet(t *testing.T) {
	var logs strings.Builder
	api := &fakeAPI{listErr: apierrors.NewNotFound(schema.GroupResource{Group: GroupVersion.Group, Resource: Resource}, "")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	f := &follower{api: api, node: node, seen: func(*NodeDiagnostic) {}, log: slog.New(slog.NewTextHandler(&logs, nil)),
		sleep: func(_ context.Context, d time.Duration) bool {
			waits = append(waits, d)
			if len(waits) == 12 {
				cancel()
			}
			return len(waits) < 12
		}}
	f.run(ctx)
	for _, w := range waits {
		if w < notServedBackoff*8/10 {
			t.Fatalf("waits %v: want each about %v", waits, notServedBackoff)
		}
	}
	if n := strings.Count(logs.String(), "level="); n != 1 || !strings.Contains(logs.String(), "CRD not installed") {
		t.Fatalf("logged %d lines, want one:\n%s", n, logs.String())
	}
	// Once it is installed, the node says so.
	api.mu.Lock()
	api.listErr = nil
	api.mu.Unlock()
	f.sleep = func(context.Context, time.Duration) bool { return false }
	ctx2, cancel2 := context.WithCancel(context.Background())
	f.seen = func(*NodeDiagnostic) { cancel2() }
	f.run(ctx2)
	if !strings.Contains(logs.String(), "can read its NodeDiagnostic again") {
		t.Fatalf("logs:\n%s", logs.String())
	}
}
