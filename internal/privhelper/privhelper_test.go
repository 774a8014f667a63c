package privhelper

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// fakeAdmin records the NVMe commands it is asked for.
type fakeAdmin struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeAdmin) IdentifyController(_ context.Context, dev string) ([]byte, error) {
	f.record("identify " + dev)
	return []byte("identify:" + dev), nil
}

func (f *fakeAdmin) LogPage(_ context.Context, dev string, lid uint8, size int) ([]byte, error) {
	f.record("log " + dev)
	return bytes.Repeat([]byte{lid}, size), nil
}

func (f *fakeAdmin) record(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

func (f *fakeAdmin) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// serve starts a server on a real Unix socket and returns a client of it.
func serve(t *testing.T, s *Server) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "helper.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c := NewClient(sock)
	c.Timeout = 10 * time.Second
	return c
}

func testServer(t *testing.T) (*Server, *fakeAdmin) {
	t.Helper()
	admin := &fakeAdmin{}
	s := NewServer(nil)
	s.Admin = admin
	s.AllowUID = uint32(os.Getuid())
	// The device check looks at /dev; fake a block device there.
	s.lstat = func(string) (fs.FileInfo, error) { return fakeInfo{fs.ModeDevice}, nil }
	return s, admin
}

type fakeInfo struct{ mode fs.FileMode }

func (f fakeInfo) Name() string       { return "dev" }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any           { return nil }

func TestProcessesFromFixture(t *testing.T) {
	s, _ := testServer(t)
	s.ProcRoot = t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(s.ProcRoot, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("42/stat", "42 (java app) Z 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 77\n")
	write("42/environ", "A=1\x00\x00B=2\x00")
	write("7/comm", "sleep\n")
	write("self/stat", "garbage") // not a PID directory
	c := serve(t, s)
	procs, err := c.Processes(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]probe.Process{
		42: {PID: 42, Comm: "java app", State: "Z", Starttime: 77, Environ: 2},
		7:  {PID: 7, Comm: "sleep", Environ: -1},
	}
	if len(procs) != len(want) {
		t.Fatalf("processes %+v, want %+v", procs, want)
	}
	for _, p := range procs {
		if p != want[p.PID] {
			t.Errorf("process %+v, want %+v", p, want[p.PID])
		}
	}
	// Without environ, sizes are not read.
	procs, err = c.Processes(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.Environ != -1 {
			t.Errorf("environ read without being asked: %+v", p)
		}
	}
}

func TestProcessesOfThisHost(t *testing.T) {
	s, _ := testServer(t)
	c := serve(t, s)
	procs, err := c.Processes(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.PID == os.Getpid() {
			if p.Environ < 1 || p.State == "" || p.Comm == "" {
				t.Errorf("this test process: %+v", p)
			}
			return
		}
	}
	t.Errorf("this test process (PID %d) not among %d processes", os.Getpid(), len(procs))
}

func TestCommands(t *testing.T) {
	s, _ := testServer(t)
	bin := t.TempDir()
	script := filepath.Join(bin, "iptables-save")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho '*filter'\necho \"args=$# path=$PATH\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	failing := filepath.Join(bin, "ip6tables-save")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho 'ip6tables-save: no tables' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The server calls LookPath on its own goroutines; the test swaps
	// what it does and reads what it saw under mu.
	var mu sync.Mutex
	var looked []string
	missing := false
	s.LookPath = func(name string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		looked = append(looked, name)
		if missing {
			return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
		}
		switch name {
		case "iptables-save":
			return script, nil
		case "ip6tables-save":
			return failing, nil
		}
		return "", exec.ErrNotFound
	}
	c := serve(t, s)
	ctx := context.Background()

	out, err := c.Command(ctx, "iptables-save")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); !strings.HasPrefix(got, "*filter\nargs=0 path="+fixedPath) {
		t.Errorf("output %q: want the script's, run with no arguments and the fixed PATH", got)
	}
	if _, err := c.Command(ctx, "ip6tables-save"); err == nil || !strings.Contains(err.Error(), "exit status 3: ip6tables-save: no tables") {
		t.Errorf("failing command: %v, want its exit status and stderr", err)
	}

	// A command not in the allow list is refused before any lookup.
	mu.Lock()
	looked = nil
	mu.Unlock()
	for _, name := range []string{"sh", "../../bin/sh", "iptables-restore"} {
		_, err := c.Command(ctx, name)
		if err == nil || !strings.Contains(err.Error(), "is not one of") {
			t.Errorf("command %q: %v, want refused", name, err)
		}
	}
	mu.Lock()
	if len(looked) > 0 {
		t.Errorf("refused commands were looked up: %v", looked)
	}
	// A command the host lacks is exec.ErrNotFound for the probe.
	missing = true
	mu.Unlock()
	if _, err := c.Command(ctx, "iptables-save"); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("missing command: %v, want exec.ErrNotFound", err)
	}
}

func TestNVMe(t *testing.T) {
	s, admin := testServer(t)
	c := serve(t, s)
	ctx := context.Background()
	b, err := c.IdentifyController(ctx, "/dev/nvme1n1")
	if err != nil || string(b) != "identify:/dev/nvme1n1" {
		t.Errorf("identify: %q, %v", b, err)
	}
	b, err = c.LogPage(ctx, "/dev/nvme1n1", probe.EBSLogPageID, probe.EBSLogPageSize)
	if err != nil || len(b) != probe.EBSLogPageSize || b[0] != probe.EBSLogPageID {
		t.Errorf("log page: %d bytes, %v", len(b), err)
	}
	for _, dev := range []string{"/dev/nvme1", "/dev/sda", "/dev/nvme1n1/../sda", "/tmp/nvme1n1", "/dev/nvme1n1p1"} {
		if _, err := c.IdentifyController(ctx, dev); err == nil || !strings.Contains(err.Error(), "not an NVMe namespace") {
			t.Errorf("identify %s: %v, want refused", dev, err)
		}
	}
	for _, page := range []struct {
		lid  uint8
		size int
	}{{0x02, probe.EBSLogPageSize}, {probe.EBSLogPageID, 1 << 20}} {
		if _, err := c.LogPage(ctx, "/dev/nvme1n1", page.lid, page.size); err == nil || !strings.Contains(err.Error(), "only") {
			t.Errorf("log page %#x size %d: %v, want refused", page.lid, page.size, err)
		}
	}
	if want := []string{"identify /dev/nvme1n1", "log /dev/nvme1n1"}; strings.Join(admin.seen(), ",") != strings.Join(want, ",") {
		t.Errorf("admin commands issued %v, want only %v", admin.seen(), want)
	}
	// Not a block device (a character device, a regular file, a link).
	for _, mode := range []fs.FileMode{fs.ModeDevice | fs.ModeCharDevice, 0, fs.ModeSymlink} {
		s2, _ := testServer(t)
		s2.lstat = func(string) (fs.FileInfo, error) { return fakeInfo{mode}, nil }
		if _, err := serve(t, s2).IdentifyController(ctx, "/dev/nvme1n1"); err == nil || !strings.Contains(err.Error(), "not a block device") {
			t.Errorf("mode %v: %v, want refused", mode, err)
		}
	}
}

func TestRefusesOtherUsersAndBadRequests(t *testing.T) {
	other, _ := testServer(t)
	other.AllowUID = uint32(os.Getuid()) + 1
	if _, err := serve(t, other).Processes(context.Background(), false); err == nil || !strings.Contains(err.Error(), "is not allowed") {
		t.Errorf("other peer: %v, want refused", err)
	}
	s, _ := testServer(t)
	c := serve(t, s)
	for _, raw := range []string{`{"op":"shell","command":"id"}`, `{"op":"processes","extra":1}`, `not json`} {
		if got, _ := rawExchange(t, c.Socket, raw+"\n"); !strings.Contains(got, `"error_kind":"refused"`) {
			t.Errorf("request %s: response %s, want refused", raw, got)
		}
	}
}

// rawExchange sends request (nothing if empty) on a connection of its own
// and returns all the helper answers until it closes the connection, and
// the read's error; a helper that keeps it open fails the read after 10 s.
func rawExchange(t *testing.T, socket, request string) (string, error) {
	t.Helper()
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if request != "" {
		if _, err := conn.Write([]byte(request)); err != nil {
			t.Fatal(err)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf bytes.Buffer
	_, err = buf.ReadFrom(conn)
	return buf.String(), err
}

// TestRefusesOtherPeerWithoutReadingItsRequest: a peer that is not
// AllowUID is told so as soon as it connects, not after the helper has
// waited for a request it may never send.
func TestRefusesOtherPeerWithoutReadingItsRequest(t *testing.T) {
	s, _ := testServer(t)
	s.AllowUID = uint32(os.Getuid()) + 1
	// Longer than rawExchange's bound: a refusal that waits for the
	// request (or for ReadTimeout) fails the test.
	s.ReadTimeout = time.Hour
	got, err := rawExchange(t, serve(t, s).Socket, "")
	if !strings.Contains(got, "is not allowed") || !strings.Contains(got, `"error_kind":"refused"`) {
		t.Errorf("peer that sent nothing read %q (%v), want the refusal at once", got, err)
	}
}

// TestClientReadsRefusalAfterFailedSend: when the helper has refused and
// closed before the client wrote its request, the write fails with EPIPE,
// but the client reports the helper's refusal that is waiting to be read.
func TestClientReadsRefusalAfterFailedSend(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	defer conns[0].Close()
	helper := conns[1]
	if _, err := helper.Write([]byte(`{"error":"peer uid 1 (pid 2) is not allowed","error_kind":"refused"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	helper.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = exchange(ctx, conns[0], Request{Op: OpProcesses})
	if err == nil || !strings.Contains(err.Error(), "is not allowed") {
		t.Errorf("client: %v, want the helper's refusal", err)
	}
}

// TestIdleConnectionsDoNotDelayRequests: connections that never send a
// request hold no request slot, so a request behind more of them than the
// helper answers at once is still answered.
func TestIdleConnectionsDoNotDelayRequests(t *testing.T) {
	s, _ := testServer(t)
	// Longer than the client's bound below: the request must not wait for
	// idle connections to time out.
	s.ReadTimeout = time.Hour
	s.LookPath = func(string) (string, error) { return "", exec.ErrNotFound }
	c := serve(t, s)
	for range 2 * maxConcurrent {
		idle, err := net.Dial("unix", c.Socket)
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
	}
	c.Timeout = 10 * time.Second
	if _, err := c.Command(context.Background(), "iptables-save"); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("request behind %d idle connections: %v, want it answered", 2*maxConcurrent, err)
	}
}

// TestIdleConnectionIsToldAndClosed: a connection that sends no request
// within ReadTimeout is told why and closed.
func TestIdleConnectionIsToldAndClosed(t *testing.T) {
	s, _ := testServer(t)
	s.ReadTimeout = 50 * time.Millisecond
	got, err := rawExchange(t, serve(t, s).Socket, "")
	if err != nil || !strings.Contains(got, "no request within 50ms") {
		t.Errorf("idle connection read %q (%v), want told and closed", got, err)
	}
}

func TestClientWithoutHelper(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "absent.sock"))
	_, err := c.Processes(context.Background(), false)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("no helper: %v, want ErrUnavailable", err)
	}
}

func TestClientTimesOutOnAHungHelper(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "hung.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		// Accept and never answer.
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c := NewClient(sock)
	c.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err = c.Command(context.Background(), "iptables-save")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung helper: %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	s, _ := testServer(t)
	release := make(chan struct{})
	var mu sync.Mutex
	running, peak := 0, 0
	s.LookPath = func(name string) (string, error) {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		return "", exec.ErrNotFound
	}
	c := serve(t, s)
	const clients = 3 * maxConcurrent
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		go func() {
			_, err := c.Command(context.Background(), "iptables-save")
			errs <- err
		}()
	}
	// Let every client connect; only maxConcurrent may be in a request.
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	got := running
	mu.Unlock()
	close(release)
	for i := 0; i < clients; i++ {
		if err := <-errs; !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("client %d: %v", i, err)
		}
	}
	if got != maxConcurrent || peak != maxConcurrent {
		t.Errorf("%d requests in progress at once (peak %d), want %d", got, peak, maxConcurrent)
	}
}
