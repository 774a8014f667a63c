// Package nodediag serves NodeDiagnostic requests (eks.amazonaws.com/
// v1alpha1, shared/detection.md B6) with the node's own kubelet identity:
// it watches only the object named after the node, runs the requested log
// capture through internal/capture, delivers the bundle to a presigned URL
// or leaves it on the node, and reports status.captureStatuses as the EKS
// node monitoring agent does. Unlike that agent, a completed capture is not
// run again when the daemon restarts.
//
// It works beside the pipeline, never in it: the watch, the capture and
// the upload run on its own goroutines, one capture at a time.
package nodediag

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/nodehealthd/nodehealthd/internal/capture"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/kubewatch"
)

// requestTimeout bounds one status write.
const requestTimeout = 15 * time.Second

// DefaultRemoveAfter is how long a bundle left on the node (destination
// "node") stays, as with the reference agent.
const DefaultRemoveAfter = 10 * time.Minute

// Options configure a Server.
type Options struct {
	// Collector runs the captures; nil fails every request with
	// CollectorErr.
	Collector    *capture.Collector
	CollectorErr error
	// StateDir holds RecordFile.
	StateDir string
	// Request sets the bounds of each collection.
	Request capture.Request
	// HTTP uploads to presigned URLs (default: a client with the
	// environment's proxy settings).
	HTTP *http.Client
	// RemoveAfter is how long a bundle for destination "node" stays
	// (default DefaultRemoveAfter).
	RemoveAfter time.Duration
	Log         *slog.Logger
	Now         func() time.Time
	// sleep waits between upload attempts and status retries (tests).
	sleep func(context.Context, time.Duration) bool
}

// Server serves the node's NodeDiagnostic. Configure and Connect may be
// called from any goroutine; everything else happens on Start's.
type Server struct {
	opts Options
	log  *slog.Logger

	mu         sync.Mutex
	cfg        config.Diagnostics
	conn       *conn
	stopFollow context.CancelFunc
	latest     *NodeDiagnostic
	wake       chan struct{}

	// Worker goroutine only.
	rec       *record
	recLoaded bool
	running   bool
	results   chan result
	// pending is a completed status not yet written; written is the last
	// one this run wrote.
	pending      *record
	pendingFails int
	retryAt      time.Time
	written      *record
	// refused is the last packet capture request refused, by UID and
	// generation.
	refused record
	// removal removes the bundle left for destination "node", of
	// removalMod, at its time.
	removal    *time.Timer
	removalMod time.Time
}

// conn is one connection of the cluster publisher.
type conn struct {
	ctx  context.Context
	api  api
	node string
}

// result is a finished capture.
type result struct {
	rec   record
	label string
}

// New returns a Server configured with cfg; nothing happens until Start
// and Connect.
func New(opts Options, cfg config.Diagnostics) *Server {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{Transport: http.DefaultTransport}
	}
	if opts.RemoveAfter <= 0 {
		opts.RemoveAfter = DefaultRemoveAfter
	}
	if opts.sleep == nil {
		opts.sleep = kubewatch.Sleep
	}
	return &Server{
		opts: opts, log: opts.Log.With("component", "nodediagnostic"), cfg: cfg,
		wake: make(chan struct{}, 1), results: make(chan result, 1),
	}
}

// Configure applies a reloaded diagnostics section: requests on or off,
// and the directories.
func (s *Server) Configure(cfg config.Diagnostics) {
	s.mu.Lock()
	s.cfg = cfg
	s.followLocked()
	s.mu.Unlock()
	s.signal()
}

// Connect is cluster.Config.OnConnect: the node's identity, until ctx ends.
func (s *Server) Connect(ctx context.Context, rc *rest.Config, node string) {
	a, err := newRESTAPI(rc)
	if err != nil {
		errorsTotal.WithLabelValues("client").Inc()
		s.log.Error("cannot make a NodeDiagnostic client; requests from the cluster are off until the next connection", "err", err)
		return
	}
	s.attach(ctx, a, node)
}

func (s *Server) attach(ctx context.Context, a api, node string) {
	c := &conn{ctx: ctx, api: a, node: node}
	s.mu.Lock()
	if s.stopFollow != nil {
		s.stopFollow()
		s.stopFollow = nil
	}
	s.conn, s.latest = c, nil
	s.followLocked()
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		if s.conn == c {
			s.conn, s.latest = nil, nil
		}
		s.mu.Unlock()
	}()
	s.signal()
}

// followLocked starts following the node's object when requests are on
// and there is a connection, and stops it when they are off.
func (s *Server) followLocked() {
	on := s.cfg.Requests.On() && s.conn != nil
	switch {
	case !on && s.stopFollow != nil:
		s.stopFollow()
		s.stopFollow, s.latest = nil, nil
	case on && s.stopFollow == nil:
		c := s.conn
		ctx, cancel := context.WithCancel(c.ctx)
		s.stopFollow = cancel
		f := &follower{api: c.api, node: c.node, log: s.log, sleep: kubewatch.Sleep, seen: func(d *NodeDiagnostic) {
			s.mu.Lock()
			if s.conn == c && ctx.Err() == nil {
				s.latest = d
			}
			s.mu.Unlock()
			s.signal()
		}}
		go f.run(ctx)
	}
}

func (s *Server) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start runs the worker until ctx ends; a capture running then is killed.
func (s *Server) Start(ctx context.Context) {
	go s.work(ctx)
}

func (s *Server) work(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		s.step(ctx)
		if !s.retryAt.IsZero() {
			retry.Reset(max(0, s.retryAt.Sub(s.opts.Now())))
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-retry.C:
		case r := <-s.results:
			s.finished(r)
		}
	}
}

// step does what the latest object asks that is not done.
func (s *Server) step(ctx context.Context) {
	s.mu.Lock()
	c, obj, cfg := s.conn, s.latest, s.cfg
	s.mu.Unlock()
	if c == nil {
		return
	}
	s.scheduleRemoval(cfg, c.node)
	if !s.recLoaded {
		s.recLoaded = true
		var err error
		if s.rec, err = loadRecord(s.opts.StateDir); err != nil {
			errorsTotal.WithLabelValues("record").Inc()
			s.log.Warn("record of the last requested capture unreadable; the object's status decides alone", "err", err)
		}
	}
	if obj == nil || !cfg.Requests.On() {
		return
	}
	s.writePending(ctx, c, obj)
	s.refusePacket(ctx, c, obj)
	if s.running || obj.Spec.LogCapture == nil || s.done(obj) {
		return
	}
	s.running = true
	go func() { s.results <- s.capture(ctx, c, obj.DeepCopy(), cfg) }()
}

// done says obj's log capture was completed, by its status or by our
// record. A completion the status does not show yet is written again.
func (s *Server) done(obj *NodeDiagnostic) bool {
	if st := obj.Status.logStatus(); st != nil && st.State.Completed != nil && st.State.Completed.ObservedGeneration >= obj.Generation {
		return true
	}
	if !s.rec.covers(obj) {
		return false
	}
	if s.pending == nil && (s.written == nil || *s.written != *s.rec) {
		s.log.Info("requested capture already completed by an earlier run; writing its status", "node", obj.Name,
			"generation", s.rec.Generation, "reason", s.rec.Completed.Reason)
		r := *s.rec
		s.pending, s.retryAt = &r, s.opts.Now()
	}
	return true
}

// finished records a capture's end, durably first, then in the status.
func (s *Server) finished(r result) {
	s.running = false
	requestsTotal.WithLabelValues(r.label).Inc()
	rec := r.rec
	if err := rec.save(s.opts.StateDir); err != nil {
		errorsTotal.WithLabelValues("record").Inc()
		s.log.Warn("cannot record the completed capture; a restart before its status is written captures it again", "err", err)
	}
	s.rec, s.pending, s.pendingFails, s.retryAt = &rec, &rec, 0, s.opts.Now()
}

// writePending writes a completed status that is not in the object yet,
// retrying with backoff; it is dropped when the object it is about is gone
// or asks for something newer.
func (s *Server) writePending(ctx context.Context, c *conn, obj *NodeDiagnostic) {
	p := s.pending
	if p == nil || s.opts.Now().Before(s.retryAt) {
		return
	}
	if p.UID != obj.UID || p.Generation < obj.Generation {
		s.log.Info("completed capture's status not written: the NodeDiagnostic was replaced or changed", "node", c.node)
		s.pending, s.retryAt = nil, time.Time{}
		return
	}
	cs := CaptureStatus{Type: TypeLog, State: CaptureState{Completed: &p.Completed}}
	if err := s.patch(ctx, c, obj.Status.with(cs)); err != nil {
		s.pendingFails++
		wait := kubewatch.Backoff(s.pendingFails, 5*time.Minute)
		s.log.Warn("cannot write the completed capture's status; retrying", "node", c.node, "err", err, "retry_in", wait.Round(time.Second))
		s.retryAt = s.opts.Now().Add(wait)
		return
	}
	s.written, s.pending, s.retryAt = p, nil, time.Time{}
}

func (s *Server) patch(ctx context.Context, c *conn, statuses []CaptureStatus) error {
	pctx, cancel := context.WithTimeout(c.ctx, requestTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	_, err := c.api.patchStatus(pctx, c.node, statuses)
	if err != nil {
		errorsTotal.WithLabelValues("status").Inc()
	}
	return err
}

// refusePacket answers a packet capture request once per generation: not
// implemented (docs/diagnostics.md).
func (s *Server) refusePacket(ctx context.Context, c *conn, obj *NodeDiagnostic) {
	if obj.Spec.PacketCapture == nil || (s.refused.UID == obj.UID && s.refused.Generation >= obj.Generation) {
		return
	}
	if st := obj.Status.find(TypePacket); st != nil && st.State.Completed != nil && st.State.Completed.ObservedGeneration >= obj.Generation {
		return
	}
	now := metav1.NewTime(s.opts.Now())
	cs := CaptureStatus{Type: TypePacket, State: CaptureState{Completed: &Completed{
		Reason: ReasonFailure, Message: "packet capture is not supported by nodehealthd; use the EKS node monitoring agent for packetCapture",
		StartedAt: now, FinishedAt: now, ObservedGeneration: obj.Generation,
	}}}
	if err := s.patch(ctx, c, obj.Status.with(cs)); err != nil {
		s.log.Warn("cannot refuse the packet capture in the NodeDiagnostic's status", "node", c.node, "err", err)
		return
	}
	requestsTotal.WithLabelValues(resultRefused).Inc()
	s.log.Info("packet capture requested and refused: not supported", "node", c.node, "generation", obj.Generation)
	s.refused = record{UID: obj.UID, Generation: obj.Generation}
}

// capture runs one requested log capture, from running to its end.
func (s *Server) capture(ctx context.Context, c *conn, obj *NodeDiagnostic, cfg config.Diagnostics) result {
	lc := obj.Spec.LogCapture
	started := metav1.NewTime(s.opts.Now())
	log := s.log.With("node", c.node, "generation", obj.Generation, "destination", RedactURL(lc.Destination), "categories", lc.Categories)
	log.Info("log capture requested by NodeDiagnostic")
	running := CaptureStatus{Type: TypeLog, State: CaptureState{Running: &Running{StartedAt: started}}}
	if err := s.patch(ctx, c, obj.Status.with(running)); err != nil {
		log.Warn("cannot set the NodeDiagnostic's status to running; capturing anyway", "err", err)
	}
	reason, msg := s.collect(ctx, log, c.node, lc, cfg)
	label := map[string]string{ReasonSuccess: resultSuccess, ReasonSuccessWithErrors: resultWithErrors, ReasonFailure: resultFailure}[reason]
	if reason == ReasonFailure {
		log.Error("requested log capture failed", "message", msg)
	} else {
		log.Info("requested log capture completed", "reason", reason, "message", msg)
	}
	return result{label: label, rec: record{UID: obj.UID, Generation: obj.Generation, Completed: Completed{
		Reason: reason, Message: msg, StartedAt: started, FinishedAt: metav1.NewTime(s.opts.Now()), ObservedGeneration: obj.Generation,
	}}}
}

// collect captures and delivers, and says how it ended.
func (s *Server) collect(ctx context.Context, log *slog.Logger, node string, lc *LogCapture, cfg config.Diagnostics) (reason, msg string) {
	sections, err := Sections(lc.Categories)
	if err == nil {
		err = checkDestination(lc.Destination)
	}
	if err != nil {
		return ReasonFailure, "refused: " + err.Error()
	}
	if s.opts.Collector == nil {
		return ReasonFailure, fmt.Sprintf("no collector: %v", s.opts.CollectorErr)
	}
	dir := cfg.BundleDir()
	if lc.Destination == DestinationNode {
		dir = cfg.Requests.Dir()
	}
	if err := mkdir(dir); err != nil {
		return ReasonFailure, err.Error()
	}
	req := s.opts.Request
	req.Output, req.Sections, req.Node = bundlePath(dir, node, lc.Destination), sections, node
	res, err := s.opts.Collector.Run(ctx, req)
	if err != nil && res.Path == "" {
		return ReasonFailure, "collection failed: " + err.Error()
	}
	if err != nil {
		log.Warn("collector reported a failure after writing the bundle", "err", err)
	}
	var where string
	if lc.Destination == DestinationNode {
		// The worker's next step schedules its removal.
		where = fmt.Sprintf("written to %s on the node (removed after %v)", res.Path, s.opts.RemoveAfter)
	} else {
		attempts, err := put(ctx, s.opts.HTTP, lc.Destination, res.Path, s.opts.sleep)
		if err != nil {
			return ReasonFailure, fmt.Sprintf("upload to %s failed after %d attempts: %v; the bundle stays on the node at %s",
				RedactURL(lc.Destination), attempts, err, res.Path)
		}
		removeBundle(log, res.Path)
		where = "uploaded to " + RedactURL(lc.Destination)
	}
	msg = fmt.Sprintf("%s: %d bytes, %d items, sections %s", where, res.Bytes, res.Items, sectionList(sections))
	if res.Errors > 0 || !res.Complete {
		return ReasonSuccessWithErrors, fmt.Sprintf("%s; %d items failed or were not reached (errors.txt in the bundle)", msg, res.Errors)
	}
	return ReasonSuccess, msg
}
