// Package cluster publishes the node's conditions and Warning events to the
// Kubernetes API server with the kubelet's own credentials, so that they
// surface even while the kubelet is down and need no cluster-side RBAC.
//
// The pipeline hands every committed change to Publish, which only copies
// what it needs; one goroutine does all network I/O. Conditions are in the
// state file and events in its outbox until acknowledged, so an API outage
// and a daemon restart together lose nothing.
package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// Defaults for the zero fields of Config.
const (
	DefaultHeartbeat          = 5 * time.Minute
	DefaultDebounce           = 200 * time.Millisecond
	DefaultDiscoverInterval   = time.Minute
	DefaultFileCheckInterval  = 30 * time.Second
	DefaultWriteBurst         = 20
	DefaultWritesPerMinute    = 12
	DefaultEventBurst         = 5
	DefaultEventsPerMinute    = 1
	DefaultMaxEventsPerReason = 20
)

// heartbeatJitter spreads heartbeats over [1, 1.2) × Heartbeat, as the
// kubelet does, so that a fleet started together does not write together.
const heartbeatJitter = 0.2

// requestTimeout bounds one API call; the worker must come back to
// condition changes even when the server hangs.
const requestTimeout = 10 * time.Second

// settle is how long a Node that differs from what we wrote is given to
// catch up before we call it overwritten: the watch may still be
// delivering versions older than our last write.
const settle = time.Second

// localEventMaxAge bounds how old a Warning may be and still become an
// event once credentials appear; the API server keeps events for an hour,
// and a host that never joins a cluster must not grow its state file.
const localEventMaxAge = time.Hour

// Config configures a Publisher. Zero fields take the defaults above.
type Config struct {
	// Root prefixes host paths (kubeconfig discovery, the files it names,
	// the kubelet environment file).
	Root string
	// Kubeconfig is an explicit kubeconfig path; empty discovers the
	// kubelet's (KubeconfigPaths under Root).
	Kubeconfig string
	// NodeName overrides the node name.
	NodeName string
	// Heartbeat is how often unchanged conditions are written again to
	// refresh lastHeartbeatTime (jittered up to +20%).
	Heartbeat time.Duration
	// Debounce is the least time between two condition writes, so that a
	// burst of changes becomes one write.
	Debounce time.Duration
	// DiscoverInterval is the longest time between two looks for a
	// missing kubeconfig. The first looks are firstDiscover apart, then
	// the gap doubles: a kubelet's kubeconfig appears early in a node's
	// boot, and a host that never joins should not look every few seconds
	// forever.
	DiscoverInterval time.Duration
	// FileCheckInterval is how often the kubeconfig and the client
	// certificate are checked for changes (a few stat calls): the kubelet
	// rotates its certificate long before the old one expires.
	FileCheckInterval time.Duration
	// WriteBurst and WritesPerMinute are the node's write budget for all
	// writes (condition patches and events).
	WriteBurst      int
	WritesPerMinute float64
	// EventBurst and EventsPerMinute are each reason's event budget.
	EventBurst      int
	EventsPerMinute float64
	// MaxEventsPerReason bounds the distinct events of one reason waiting
	// for budget or for the API server; beyond it findings are dropped and
	// counted.
	MaxEventsPerReason int
	// NoWatch turns off the watch on the Node; re-registration and
	// overwrites are then repaired at the next heartbeat.
	NoWatch bool
	// ExecTimeout bounds one run of the kubeconfig's exec credential
	// plugin; it is killed after that.
	ExecTimeout time.Duration
	// UserAgent identifies the daemon in API server logs.
	UserAgent string
	Logger    *slog.Logger
}

// Publisher implements publish.Publisher and publish.Starter.
type Publisher struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	want     map[string]condition.Condition
	owned    []string
	haveWant bool
	inbox    []state.Outbound
	maxID    uint64
	prior    *state.ClusterLink
	// seenState is set by the first Publish: only that one shows the link
	// of the previous run; later ones show our own reports.
	seenState bool
	wake      chan struct{}

	// testAPI replaces the API server connection in unit tests.
	testAPI api
}

var (
	_ publish.Publisher = (*Publisher)(nil)
	_ publish.Starter   = (*Publisher)(nil)
)

// New checks cfg and returns a Publisher; nothing happens until Start.
func New(cfg Config) (*Publisher, error) {
	// Zero means the default.
	cfg.Heartbeat = cmp.Or(cfg.Heartbeat, DefaultHeartbeat)
	cfg.Debounce = cmp.Or(cfg.Debounce, DefaultDebounce)
	cfg.DiscoverInterval = cmp.Or(cfg.DiscoverInterval, DefaultDiscoverInterval)
	cfg.FileCheckInterval = cmp.Or(cfg.FileCheckInterval, DefaultFileCheckInterval)
	cfg.WriteBurst = cmp.Or(cfg.WriteBurst, DefaultWriteBurst)
	cfg.WritesPerMinute = cmp.Or(cfg.WritesPerMinute, DefaultWritesPerMinute)
	cfg.EventBurst = cmp.Or(cfg.EventBurst, DefaultEventBurst)
	cfg.EventsPerMinute = cmp.Or(cfg.EventsPerMinute, DefaultEventsPerMinute)
	cfg.MaxEventsPerReason = cmp.Or(cfg.MaxEventsPerReason, DefaultMaxEventsPerReason)
	cfg.ExecTimeout = cmp.Or(cfg.ExecTimeout, DefaultExecTimeout)
	cfg.Root = cmp.Or(cfg.Root, "/")
	cfg.UserAgent = cmp.Or(cfg.UserAgent, Component)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.Heartbeat < time.Second:
		return nil, fmt.Errorf("cluster heartbeat %v: must be at least 1s", cfg.Heartbeat)
	case cfg.DiscoverInterval < time.Second || cfg.FileCheckInterval < time.Second:
		return nil, fmt.Errorf("cluster discover interval %v and file check interval %v: must be at least 1s", cfg.DiscoverInterval, cfg.FileCheckInterval)
	case cfg.Debounce < 0:
		return nil, fmt.Errorf("cluster debounce %v: must not be negative", cfg.Debounce)
	case cfg.WriteBurst < 1 || cfg.WritesPerMinute <= 0:
		return nil, fmt.Errorf("cluster write budget: burst %d and rate %v/min must be positive", cfg.WriteBurst, cfg.WritesPerMinute)
	case cfg.EventBurst < 1 || cfg.EventsPerMinute <= 0:
		return nil, fmt.Errorf("event budget: burst %d and rate %v/min must be positive", cfg.EventBurst, cfg.EventsPerMinute)
	case cfg.MaxEventsPerReason < 1:
		return nil, fmt.Errorf("max events per reason %d: must be positive", cfg.MaxEventsPerReason)
	case cfg.ExecTimeout < 0:
		return nil, fmt.Errorf("exec credential plugin timeout %v: must not be negative", cfg.ExecTimeout)
	}
	return &Publisher{cfg: cfg, log: cfg.Logger.With("subsystem", "cluster"), wake: make(chan struct{}, 1)}, nil
}

// Publish takes the conditions and the new outbox records of a commit. It
// runs in the pipeline goroutine and never waits for the network.
func (p *Publisher) Publish(u publish.Update) {
	p.mu.Lock()
	p.want = maps.Clone(u.Conditions)
	if p.want == nil {
		p.want = map[string]condition.Condition{}
	}
	p.haveWant = true
	p.owned = finding.Conditions
	if u.State != nil {
		p.owned = u.State.OwnedConditions()
		for _, o := range u.State.Outbox {
			if o.ID > p.maxID {
				p.inbox = append(p.inbox, o)
				p.maxID = o.ID
			}
		}
		if !p.seenState && u.State.Cluster != nil {
			l := *u.State.Cluster
			p.prior = &l
		}
		p.seenState = true
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Start runs the worker goroutine until ctx ends.
func (p *Publisher) Start(ctx context.Context, fb publish.Feedback) {
	w := &worker{
		p: p, cfg: &p.cfg, fb: fb, log: p.log,
		events:  newEventQueue(p.cfg.EventBurst, p.cfg.EventsPerMinute, p.cfg.MaxEventsPerReason),
		budget:  newBucket(p.cfg.WriteBurst, p.cfg.WritesPerMinute, time.Now()),
		logged:  map[string]time.Time{},
		dropLog: map[string]int{},
	}
	go w.run(ctx)
}

// worker owns everything below; only its goroutine touches it.
type worker struct {
	p   *Publisher
	cfg *Config
	fb  publish.Feedback
	log *slog.Logger
	// sentAcks are the outbox records of events sent since the last
	// report.
	sentAcks []uint64

	// connection
	creds        *credentials
	api          api
	node         string
	nextDiscover time.Time
	// discoverMisses counts looks that found no usable kubeconfig.
	discoverMisses int
	nextFiles      time.Time
	certStamp      fileStamp
	obs            *obsSlot
	stopWatch      context.CancelFunc
	noKubeconfig   bool

	// conditions; owned are the types of ours (state.OwnedConditions)
	want      map[string]condition.Condition
	owned     []string
	haveWant  bool
	written   map[string]condition.Condition // nil: not written by this connection
	lastWrite time.Time
	heartbeat time.Time
	retryAt   time.Time
	failures  int
	reassert  bool
	checkAt   time.Time
	lastNode  *v1Node
	absent    bool // the watch says the Node does not exist
	uid       types.UID
	overwrote []time.Time

	// events
	events        *eventQueue
	eventRetryAt  time.Time
	eventFailures int
	budget        *bucket

	// link
	connected   bool
	lastSuccess time.Time
	lastErr     string
	link        state.ClusterLink
	linkSent    bool
	hadLink     bool // the state file holds a link from an earlier run
	logged      map[string]time.Time
	dropLog     map[string]int
	dropLogAt   time.Time

	// unauthenticated: the last call failed for want of credentials the
	// API server accepts.
	unauthenticated bool
}

func (w *worker) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	defer func() {
		if w.stopWatch != nil {
			w.stopWatch()
		}
	}()
	for {
		now := time.Now()
		w.take()
		if w.api == nil && !now.Before(w.nextDiscover) {
			w.connect(ctx, now)
		}
		if w.api != nil {
			if !now.Before(w.nextFiles) {
				w.checkFiles(ctx, now)
			}
			w.observe(now)
			w.syncConditions(ctx, now)
			w.syncEvents(ctx, time.Now())
		} else {
			w.expireLocal(now)
		}
		w.flushDropLog(now)
		w.report()

		next := w.nextWake(time.Now())
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(0, time.Until(next)))
		var obsSignal <-chan struct{}
		if w.obs != nil {
			obsSignal = w.obs.signal
		}
		select {
		case <-ctx.Done():
			return
		case <-w.p.wake:
		case <-obsSignal:
		case <-timer.C:
		}
	}
}

// take moves what Publish collected into the worker.
func (w *worker) take() {
	w.p.mu.Lock()
	if w.p.haveWant {
		w.want, w.owned, w.haveWant = w.p.want, w.p.owned, true
	}
	inbox := w.p.inbox
	w.p.inbox = nil
	prior := w.p.prior
	w.p.prior = nil
	w.p.mu.Unlock()
	if prior != nil {
		w.events.droppedTotal += prior.EventsDropped
		w.events.restore(prior.Events, time.Now())
		w.hadLink = true
	}
	var drop []uint64
	for _, o := range inbox {
		if !w.events.add(o) {
			drop = append(drop, o.ID)
			w.dropLog[o.Finding.Reason]++
		}
	}
	if len(drop) > 0 {
		w.fb.Ack(drop...)
	}
}

// connect finds and loads the kubeconfig and starts following the Node.
func (w *worker) connect(ctx context.Context, now time.Time) {
	w.nextDiscover = now.Add(discoverDelay(w.discoverMisses, w.cfg.DiscoverInterval))
	w.discoverMisses++
	if w.p.testAPI != nil {
		w.api, w.node = w.p.testAPI, w.cfg.NodeName
		w.startWatch(ctx)
		return
	}
	path, err := findKubeconfig(w.cfg.Root, w.cfg.Kubeconfig)
	if err != nil {
		if !w.noKubeconfig {
			w.noKubeconfig = true
			where := w.cfg.Kubeconfig
			if where == "" {
				var ps []string
				for _, p := range KubeconfigPaths {
					ps = append(ps, host.Path(w.cfg.Root, p))
				}
				where = strings.Join(ps, ", ")
			}
			msg := "no kubelet kubeconfig yet: local mode; publishing starts when it appears"
			if !errors.Is(err, fs.ErrNotExist) {
				msg = "kubelet kubeconfig unreadable: local mode until it can be read"
			}
			w.log.Info(msg, "looked_in", where, "err", err, "check_every", fmt.Sprintf("%v, growing to %v", firstDiscover, w.cfg.DiscoverInterval))
			w.lastErr = "no kubeconfig: " + err.Error()
		}
		return
	}
	creds, err := loadCredentials(ctx, w.cfg, path, w.log)
	var client restAPI
	if err == nil {
		client, err = newRESTAPI(creds.config)
	}
	if err != nil {
		w.lastErr = "kubeconfig: " + err.Error()
		w.logOnce("kubeconfig", 10*time.Minute, slog.LevelError, "cannot use the kubelet kubeconfig; retrying", "kubeconfig", path, "err", err, "retry_every", w.cfg.DiscoverInterval)
		return
	}
	w.noKubeconfig, w.discoverMisses = false, 0
	node, source := resolveNodeName(w.cfg.Root, w.cfg.NodeName, creds.certNode)
	w.log.Info("publishing to the cluster", "node", node, "node_name_from", source, "kubeconfig", path, "credentials", creds.kind)
	if creds.certNode != "" && creds.certNode != node {
		w.log.Error("the client certificate is node "+creds.certNode+"'s: the API server will refuse writes to node "+node,
			"node", node, "certificate_node", creds.certNode)
	}
	w.creds, w.api, w.node = creds, client, node
	w.certStamp = certStamp(creds)
	w.nextFiles = now.Add(w.cfg.FileCheckInterval)
	w.written, w.lastNode, w.uid, w.absent = nil, nil, "", false
	w.retryAt, w.failures, w.eventRetryAt, w.eventFailures = now, 0, now, 0
	w.startWatch(ctx)
}

func (w *worker) startWatch(ctx context.Context) {
	if w.cfg.NoWatch {
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	w.stopWatch = cancel
	w.obs = newObsSlot()
	go watchNode(wctx, w.api, w.node, w.obs, w.log)
}

// disconnect drops the client, e.g. to reload a changed kubeconfig.
func (w *worker) disconnect() {
	if w.stopWatch != nil {
		w.stopWatch()
		w.stopWatch = nil
	}
	w.obs, w.api, w.creds = nil, nil, nil
	w.nextDiscover = time.Time{}
}

// firstDiscover is the gap between the first looks for a missing
// kubeconfig; it doubles up to Config.DiscoverInterval.
const firstDiscover = 10 * time.Second

// discoverDelay is the wait after misses looks that found nothing.
func discoverDelay(misses int, max time.Duration) time.Duration {
	d := firstDiscover
	for range misses {
		if d >= max {
			break
		}
		d *= 2
	}
	return min(d, max)
}

func certStamp(c *credentials) fileStamp {
	if c == nil || c.certFile == "" {
		return fileStamp{}
	}
	s := stampOf(c.certFile)
	if k := stampOf(c.keyFile); c.keyFile != c.certFile {
		s.size += k.size
		if k.modTime.After(s.modTime) {
			s.modTime = k.modTime
		}
		s.ino ^= k.ino << 1
	}
	return s
}

// checkFiles notices a rewritten kubeconfig and a rotated certificate.
// client-go reads certificate files at each TLS handshake, but an
// established HTTP/2 connection (the watch keeps one open) never
// handshakes again, and client-go only looks for rotation every 5 minutes.
// A new client gets new connections at once; the old ones are closed.
func (w *worker) checkFiles(ctx context.Context, now time.Time) {
	w.nextFiles = now.Add(w.cfg.FileCheckInterval)
	if w.creds == nil {
		return
	}
	var why string
	if st := stampOf(w.creds.path); st.exists && st != w.creds.stamp {
		why = "kubeconfig changed; reloading it"
	} else if st := certStamp(w.creds); st.exists && st != w.certStamp {
		why = "client certificate changed on disk; reconnecting with it"
	}
	if why == "" {
		return
	}
	w.log.Info(why, "kubeconfig", w.creds.path, "cert", w.creds.certFile)
	old := w.creds.dialer
	w.disconnect()
	w.connect(ctx, now)
	old.CloseAll()
}

// observe applies what the watch saw.
func (w *worker) observe(now time.Time) {
	if w.obs != nil {
		if o, ok := w.obs.take(); ok {
			if o.reachable && (w.failures > 0 || w.eventFailures > 0) {
				// The server is back: retry now rather than at the end
				// of a backoff that grew during the outage.
				w.retryAt, w.eventRetryAt = now, now
			}
			if o.hasNode {
				w.nodeSeen(o.node, now)
			}
		}
	}
	if !w.checkAt.IsZero() && !now.Before(w.checkAt) {
		w.checkAt = time.Time{}
		if w.lastNode != nil && w.written != nil && !w.reassert && !inSync(w.lastNode, w.written, w.owned) {
			w.overwritten(now)
		}
	}
}

func (w *worker) nodeSeen(n *v1Node, now time.Time) {
	if n == nil {
		if !w.absent {
			w.log.Info("Node object is gone; conditions will be written again when it is registered", "node", w.node)
		}
		w.absent, w.lastNode, w.uid = true, nil, ""
		return
	}
	switch {
	case w.absent:
		w.log.Info("Node registered; writing conditions", "node", w.node, "uid", n.UID)
		w.reassert = true
		w.retryAt = now
	case w.uid != "" && n.UID != w.uid:
		w.log.Info("Node re-registered with a new UID; writing conditions again", "node", w.node, "old_uid", w.uid, "uid", n.UID)
		w.reassert = true
		w.retryAt = now
	}
	w.absent, w.lastNode, w.uid = false, n, n.UID
	if w.written != nil && !w.reassert && !inSync(n, w.written, w.owned) && w.checkAt.IsZero() {
		w.checkAt = now.Add(settle)
	}
}

// overwritten handles someone else changing our conditions. Writing them
// back is right (we own these types), but two owners fighting must not
// become a write loop, so repeated overwrites back off.
func (w *worker) overwritten(now time.Time) {
	keep := w.overwrote[:0]
	for _, t := range w.overwrote {
		if now.Sub(t) < 10*time.Minute {
			keep = append(keep, t)
		}
	}
	w.overwrote = append(keep, now)
	n := len(w.overwrote)
	w.reassert = true
	if n > 1 {
		w.retryAt = maxTime(w.retryAt, now.Add(backoff(n, 5*time.Minute)))
	}
	w.logOnce("overwritten", time.Minute, slog.LevelWarn, "our conditions on the Node were changed by another client; writing them again",
		"node", w.node, "times_in_10m", n, "hint", "another agent (e.g. the EKS node monitoring agent) may own the same condition types")
}

func (w *worker) needConditions(now time.Time) bool {
	if !w.haveWant || w.absent {
		return false
	}
	return w.written == nil || w.reassert || !sameConditions(w.want, w.written) || !now.Before(w.heartbeat)
}

// syncConditions writes our conditions when they changed, when the Node
// lost them, or when the heartbeat is due.
func (w *worker) syncConditions(ctx context.Context, now time.Time) {
	if !w.needConditions(now) || now.Before(w.retryAt) || now.Before(w.lastWrite.Add(w.cfg.Debounce)) {
		return
	}
	if !w.budget.take(now) {
		return
	}
	want := w.want
	changed := w.written == nil || !sameConditions(want, w.written)
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	node, err := w.api.patchNodeStatus(rctx, w.node, conditionPatch(want, w.owned, now))
	cancel()
	done := time.Now()
	if err != nil {
		w.failures++
		w.retryAt = done.Add(w.failed(whatConditions, err, w.failures))
		return
	}
	w.succeeded(done)
	w.failures = 0
	prev := w.written
	w.written, w.lastWrite, w.reassert = want, done, false
	w.heartbeat = done.Add(time.Duration(float64(w.cfg.Heartbeat) * (1 + heartbeatJitter*rand.Float64())))
	if node != nil {
		w.uid = node.UID
		w.absent = false
	}
	if !changed {
		w.log.Debug("conditions heartbeat written", "node", w.node)
		return
	}
	for t, c := range want {
		if p, ok := prev[t]; ok && p == c {
			continue
		}
		w.log.Info("condition written", "node", w.node, "type", t, "status", c.Status, "reason", c.Reason,
			"since", c.LastTransitionTime.Format(time.RFC3339))
	}
	for t := range prev {
		if _, ok := want[t]; !ok {
			w.log.Info("condition removed: no longer monitored", "node", w.node, "type", t)
		}
	}
}

// maxEventsPerRound bounds the event calls between two looks at the
// conditions, which come first.
const maxEventsPerRound = 5

// syncEvents delivers waiting events within the budgets.
func (w *worker) syncEvents(ctx context.Context, now time.Time) {
	if len(w.events.pending) == 0 || now.Before(w.eventRetryAt) || w.uid == "" {
		return
	}
	sent := 0
	for _, g := range append([]*group(nil), w.events.pending...) {
		if sent == maxEventsPerRound {
			return
		}
		rb := w.events.reason(g.key.reason, now)
		if !rb.ready(now) {
			continue
		}
		if !w.budget.take(now) {
			return
		}
		rb.take(now)
		sent++
		err := w.sendEvent(ctx, g, now)
		done := time.Now()
		if err != nil {
			// The reason's budget limits what reaches people, so an
			// outage must not spend it; the write budget stays spent,
			// since it bounds requests, retries included.
			rb.refund()
			w.eventFailures++
			w.eventRetryAt = done.Add(w.failed(whatEvent, err, w.eventFailures))
			return
		}
		w.succeeded(done)
		w.eventFailures = 0
		w.events.done(g)
		// Acknowledged in report, after the link that remembers the
		// event: a restart in between must find the event to count up,
		// not create a second one.
		w.sentAcks = append(w.sentAcks, g.ids...)
		w.log.Debug("event sent", "node", w.node, "reason", g.key.reason, "count", g.count)
		now = done
	}
}

func (w *worker) sendEvent(ctx context.Context, g *group, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if s := w.events.reusable(g.key, now); s != nil && s.uid == w.uid {
		count := s.count + int32(g.count)
		_, err := w.api.patchEvent(ctx, s.name, countPatch(count, g.last))
		if err == nil {
			s.count, s.written = count, now
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
		// Expired in the server: a new event carries the count from here.
	}
	name := eventName(w.node, g)
	ev, err := w.api.createEvent(ctx, newEvent(w.node, w.uid, g, name))
	if apierrors.IsAlreadyExists(err) {
		var ours bool
		if ours, err = w.adoptEvent(ctx, name, g, now); ours || err != nil {
			return err
		}
		ev, err = w.api.createEvent(ctx, newEvent(w.node, w.uid, g, uniqueEventName(w.node, time.Now())))
	}
	if err == nil {
		w.events.remember(g.key, sentEvent{name: ev.Name, count: int32(g.count), first: g.first, written: now, uid: w.uid}, now)
	}
	return err
}

// adoptEvent handles an event name that already exists. It is normally
// this group's own event, created before a crash lost the acknowledgement:
// then its count is brought up to the group's (which holds every record
// not acknowledged) and it is remembered, and the group is delivered. A
// node identity may not get events, but it may patch them, and an empty
// patch returns the event as it is.
func (w *worker) adoptEvent(ctx context.Context, name string, g *group, now time.Time) (bool, error) {
	ev, err := w.api.patchEvent(ctx, name, []byte("{}"))
	if err != nil {
		return false, err
	}
	if ev.Reason != g.key.reason || ev.Message != g.key.message || ev.InvolvedObject.UID != w.uid {
		return false, nil
	}
	count := max(ev.Count, int32(g.count))
	if count != ev.Count || !ev.LastTimestamp.Time.Equal(g.last.Truncate(time.Second)) {
		if _, err := w.api.patchEvent(ctx, name, countPatch(count, g.last)); err != nil {
			return false, err
		}
	}
	w.events.remember(g.key, sentEvent{name: name, count: count, first: g.first, written: now, uid: w.uid}, now)
	w.log.Info("event already in the API server (sent before a restart); counted, not sent again", "node", w.node, "event", name, "count", count)
	return true, nil
}

// expireLocal keeps the outbox of a host without credentials bounded.
func (w *worker) expireLocal(now time.Time) {
	ids, n := w.events.expire(now, localEventMaxAge)
	if n == 0 {
		return
	}
	w.fb.Ack(ids...)
	w.log.Warn("Warning findings too old to send as events once credentials appear were dropped", "count", n, "max_age", localEventMaxAge)
}

// flushDropLog reports rate-limited findings at most once a minute, with
// their counts per reason.
func (w *worker) flushDropLog(now time.Time) {
	if len(w.dropLog) == 0 || now.Before(w.dropLogAt) {
		return
	}
	for reason, n := range w.dropLog {
		w.log.Warn("events dropped by the per-reason rate limit", "reason", reason, "dropped", n,
			"dropped_total", w.events.dropped[reason], "limit", fmt.Sprintf("%d distinct events waiting", w.cfg.MaxEventsPerReason))
	}
	clear(w.dropLog)
	w.dropLogAt = now.Add(time.Minute)
}

func (w *worker) succeeded(now time.Time) {
	if !w.connected && !w.lastSuccess.IsZero() {
		w.log.Info("API server reachable again", "node", w.node)
	}
	w.connected, w.lastSuccess, w.lastErr, w.unauthenticated = true, now, "", false
	clear(w.logged)
}

// failed records a failed call and returns how long to wait before the
// next. A missing Node is normal while the kubelet registers it (or after
// it was deleted) and is retried quietly; a refusal is a misconfiguration
// and is logged loudly but retried rarely.
func (w *worker) failed(what string, err error, failures int) time.Duration {
	w.connected, w.unauthenticated = false, false
	w.lastErr = fmt.Sprintf("%s: %v", what, err)
	switch {
	case isCredentialError(err):
		// The plugin logged why, once per episode. It runs on this
		// host, so retrying costs the API server nothing and ends the
		// outage as soon as it answers.
		w.unauthenticated = true
		return backoff(failures, 30*time.Second)
	case what == whatConditions && apierrors.IsNotFound(err):
		w.lastErr = fmt.Sprintf("node %s is not registered (yet)", w.node)
		w.logOnce("notfound", 10*time.Minute, slog.LevelInfo, "Node not registered yet; retrying quietly", "node", w.node)
		return backoff(failures, 30*time.Second)
	case apierrors.IsForbidden(err):
		w.lastErr += fmt.Sprintf(" (are the credentials node %s's?)", w.node)
		w.logOnce("forbidden:"+w.lastErr, 10*time.Minute, slog.LevelError, "API server refused the write", "node", w.node, "what", what, "err", err)
		return backoff(failures, refusedBackoff)
	case apierrors.IsUnauthorized(err):
		w.unauthenticated = true
		w.logOnce("unauthorized", 10*time.Minute, slog.LevelError, "API server does not accept the kubelet credentials", "node", w.node, "what", what, "err", err)
		return backoff(failures, refusedBackoff)
	}
	w.logOnce("error:"+what, time.Minute, slog.LevelWarn, "API call failed; retrying with backoff", "node", w.node, "what", what, "err", err, "failures", failures)
	return backoff(failures, 30*time.Second)
}

// What failed, for logs and the status line.
const (
	whatConditions = "write conditions"
	whatEvent      = "send event"
)

// logOnce logs a message at most once per every for its key.
func (w *worker) logOnce(key string, every time.Duration, level slog.Level, msg string, args ...any) {
	now := time.Now()
	if t, ok := w.logged[key]; ok && now.Sub(t) < every {
		w.log.Debug(msg, args...)
		return
	}
	w.logged[key] = now
	w.log.Log(context.Background(), level, msg, args...)
}

// report tells the pipeline how the link is, when that changed.
func (w *worker) report() {
	if w.creds == nil && w.api == nil && !w.linkSent && !w.hadLink {
		// Local mode: say nothing, so that status shows local mode. A
		// link left by an earlier run is replaced, not left claiming
		// to be connected.
		return
	}
	pending := w.events.pendingRecords()
	if w.haveWant && (w.written == nil || w.reassert || !sameConditions(w.want, w.written)) {
		pending++
	}
	l := state.ClusterLink{
		Node: w.node, Connected: w.connected && w.api != nil, LastSuccess: w.lastSuccess, LastError: w.lastErr,
		Unauthenticated: w.unauthenticated,
		PendingWrites:   pending, EventsDropped: w.events.droppedTotal,
		Events: w.events.snapshot(time.Now()),
	}
	if w.creds != nil {
		l.CredentialPath = w.creds.path
	}
	if !w.linkSent || !l.Equal(w.link) {
		w.link, w.linkSent = l, true
		w.fb.SetClusterLink(l)
	}
	if len(w.sentAcks) > 0 {
		w.fb.Ack(w.sentAcks...)
		w.sentAcks = nil
	}
}

// nextWake is when the loop must look again without being woken.
func (w *worker) nextWake(now time.Time) time.Time {
	next := now.Add(time.Minute)
	at := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	if w.api == nil {
		at(w.nextDiscover)
		return next
	}
	at(w.nextFiles)
	if !w.checkAt.IsZero() {
		at(w.checkAt)
	}
	if w.haveWant && !w.absent {
		if w.needConditions(now) {
			at(maxTime(w.retryAt, w.lastWrite.Add(w.cfg.Debounce), w.budget.next(now)))
		} else {
			at(w.heartbeat)
		}
	}
	if len(w.events.pending) > 0 && w.uid != "" {
		soonest := now.Add(time.Minute)
		for _, g := range w.events.pending {
			if t := w.events.reason(g.key.reason, now).next(now); t.Before(soonest) {
				soonest = t
			}
		}
		at(maxTime(w.eventRetryAt, soonest, w.budget.next(now)))
	}
	if len(w.dropLog) > 0 {
		at(w.dropLogAt)
	}
	return next
}

func maxTime(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}
