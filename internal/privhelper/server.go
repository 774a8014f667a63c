package privhelper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// Server answers requests. The zero value is not usable; see NewServer.
type Server struct {
	// ProcRoot is the /proc the process table is read from.
	ProcRoot string
	// Admin issues NVMe admin commands.
	Admin probe.NVMeAdmin
	// LookPath finds a command (exec.LookPath in a fixed PATH).
	LookPath func(name string) (string, error)
	// RequestTimeout bounds one request, a hung NVMe device or command
	// included.
	RequestTimeout time.Duration
	// ReadTimeout bounds the wait for a request once a peer is accepted:
	// the daemon sends its request as soon as it connects, so a connection
	// that sends nothing for this long is told so and closed.
	ReadTimeout time.Duration
	// AllowUID is the only peer user ID served (0, root).
	AllowUID uint32
	Log      *slog.Logger
	// lstat is os.Lstat; tests fake device nodes.
	lstat func(string) (os.FileInfo, error)
}

// NewServer returns a server for the host it runs on.
func NewServer(log *slog.Logger) *Server {
	return &Server{
		ProcRoot: "/proc",
		Admin:    probe.DirectNVMeAdmin(),
		LookPath: lookPathFixed,
		// Below the client's own limits, so that the daemon sees the
		// helper's error rather than a bare timeout.
		RequestTimeout: 50 * time.Second,
		ReadTimeout:    DefaultReadTimeout,
		Log:            log,
		lstat:          os.Lstat,
	}
}

// fixedPath is where commands are looked up: the environment of whoever
// started the helper does not choose what it executes.
const fixedPath = "/usr/sbin:/usr/bin:/sbin:/bin"

func lookPathFixed(name string) (string, error) {
	for _, dir := range strings.Split(fixedPath, ":") {
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// DefaultReadTimeout is the default Server.ReadTimeout.
const DefaultReadTimeout = 5 * time.Second

// Serve answers connections on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	// Open connections are bounded so that a flood of them cannot exhaust
	// the helper's descriptors; the ones beyond wait in the listen backlog.
	// Each is held at most ReadTimeout before its request is read, and a
	// refused peer not at all, so idle connections delay a request by at
	// most ReadTimeout, never the 50 s of a request.
	open := make(chan struct{}, maxOpen)
	// A few requests are answered at a time: the daemon makes one at a
	// time per probe, and a misbehaving client must not make the helper
	// scan /proc or run iptables-save hundreds of times in parallel. A
	// connection takes one of these only once its request is read, so
	// connections that send nothing cannot hold them.
	work := make(chan struct{}, maxConcurrent)
	for {
		select {
		case open <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			<-open
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-open }()
			s.handle(ctx, c, work)
		}()
	}
}

// maxConcurrent bounds the requests answered at once.
const maxConcurrent = 4

// maxOpen bounds the connections open at once.
const maxOpen = 64

// maxRequest bounds a request; real ones are under 200 bytes.
const maxRequest = 4096

func (s *Server) handle(ctx context.Context, c net.Conn, work chan struct{}) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(s.ReadTimeout))
	var resp Response
	req, err := s.read(c)
	if err == nil {
		resp, err = s.serveRequest(ctx, c, req, work)
	} else {
		// The read may have used up the deadline; the refusal is small.
		_ = c.SetWriteDeadline(time.Now().Add(s.ReadTimeout))
	}
	if err != nil {
		resp = Response{Error: err.Error()}
		var rerr refusedError
		switch {
		case errors.As(err, &rerr):
			resp.ErrorKind = KindRefused
		case errors.Is(err, exec.ErrNotFound):
			resp.ErrorKind = KindNotFound
		}
		if s.Log != nil {
			level := slog.LevelWarn
			if resp.ErrorKind == KindNotFound {
				// Normal on a host without the command; the daemon
				// logs it once.
				level = slog.LevelDebug
			}
			s.Log.Log(ctx, level, "request failed", "op", req.Op, "err", err)
		}
	}
	// A refused peer's request may still be unsent or unread: closing then
	// makes its write fail (EPIPE) or its later reads fail (ECONNRESET), but
	// the response written here stays readable before either, and the
	// client reads it even after a failed write.
	if err := json.NewEncoder(c).Encode(&resp); err != nil && s.Log != nil {
		s.Log.Warn("cannot send the response", "op", req.Op, "err", err)
	}
}

// serveRequest waits for a slot and answers req, within RequestTimeout.
func (s *Server) serveRequest(ctx context.Context, c net.Conn, req Request, work chan struct{}) (Response, error) {
	ctx, cancel := context.WithTimeout(ctx, s.RequestTimeout)
	defer cancel()
	_ = c.SetDeadline(time.Now().Add(s.RequestTimeout + 5*time.Second))
	select {
	case work <- struct{}{}:
		defer func() { <-work }()
	case <-ctx.Done():
		return Response{}, fmt.Errorf("waiting for one of %d requests in progress: %w", maxConcurrent, ctx.Err())
	}
	return s.answer(ctx, req)
}

// read checks the peer, then decodes its request. A refused peer is
// answered at once, without waiting for a request it may never send.
func (s *Server) read(c net.Conn) (Request, error) {
	if err := s.checkPeer(c); err != nil {
		return Request{}, err
	}
	var req Request
	dec := json.NewDecoder(io.LimitReader(c, maxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return Request{}, refusedError{fmt.Errorf("no request within %v", s.ReadTimeout)}
		}
		return req, refusedError{fmt.Errorf("bad request: %w", err)}
	}
	return req, nil
}

// checkPeer refuses a peer that is not AllowUID. The socket's mode already
// keeps others out; this holds even if the mode is loosened by mistake.
func (s *Server) checkPeer(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil // tests over pipes
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if cred.Uid != s.AllowUID {
		return refusedError{fmt.Errorf("peer uid %d (pid %d) is not allowed", cred.Uid, cred.Pid)}
	}
	return nil
}

// refusedError is a request the helper will not serve.
type refusedError struct{ error }

func (e refusedError) Unwrap() error { return e.error }

// nvmeNamespace is the only device name form served: an NVMe namespace
// block device, which is what the EBS probe reads.
var nvmeNamespace = regexp.MustCompile(`^/dev/nvme[0-9]+n[0-9]+$`)

func (s *Server) answer(ctx context.Context, req Request) (Response, error) {
	switch req.Op {
	case OpProcesses:
		procs, err := probe.ScanProcesses(ctx, s.ProcRoot, req.Environ)
		return Response{Processes: procs}, err
	case OpIdentify, OpLogPage:
		if err := s.checkDevice(req.Device); err != nil {
			return Response{}, err
		}
		if req.Op == OpIdentify {
			b, err := s.Admin.IdentifyController(ctx, req.Device)
			return Response{Data: b}, err
		}
		if req.LogPage != probe.EBSLogPageID || req.Size != probe.EBSLogPageSize {
			return Response{}, refusedError{fmt.Errorf("log page %#x of %d bytes: only %#x of %d bytes is served", req.LogPage, req.Size, probe.EBSLogPageID, probe.EBSLogPageSize)}
		}
		b, err := s.Admin.LogPage(ctx, req.Device, req.LogPage, req.Size)
		return Response{Data: b}, err
	case OpCommand:
		if !slices.Contains(probe.PrivilegedCommands, req.Command) {
			return Response{}, refusedError{fmt.Errorf("command %q is not one of %v", req.Command, probe.PrivilegedCommands)}
		}
		b, err := s.run(ctx, req.Command)
		return Response{Data: b}, err
	}
	return Response{}, refusedError{fmt.Errorf("unknown op %q", req.Op)}
}

// checkDevice accepts an NVMe namespace path that is a block device, not a
// link to something else.
func (s *Server) checkDevice(dev string) error {
	if !nvmeNamespace.MatchString(dev) {
		return refusedError{fmt.Errorf("device %q is not an NVMe namespace (/dev/nvme<N>n<M>)", dev)}
	}
	fi, err := s.lstat(dev)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return refusedError{fmt.Errorf("%s is not a block device", dev)}
	}
	return nil
}

// run executes name with no arguments and an empty environment.
func (s *Server) run(ctx context.Context, name string) ([]byte, error) {
	path, err := s.LookPath(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = []string{"PATH=" + fixedPath, "LC_ALL=C"}
	cmd.WaitDelay = time.Second
	var out limitedBuffer
	var stderr bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("%s: %w: %s", name, err, firstLine(msg))
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if out.over {
		return nil, fmt.Errorf("%s: output over %d bytes", name, maxOutput)
	}
	return out.Bytes(), nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// limitedBuffer keeps up to maxOutput bytes and notes that more came.
type limitedBuffer struct {
	bytes.Buffer
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - b.Len(); len(p) > room {
		b.over = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		_, _ = l.w.Write(p[:k])
	}
	return len(p), nil
}
