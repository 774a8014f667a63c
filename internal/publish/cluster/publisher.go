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
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// DefaultDebounce is Config.Debounce's default.
const DefaultDebounce = 200 * time.Millisecond

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
	// ClusterSettings are config.yaml's cluster section (heartbeat, write
	// and event budgets, exec plugin timeout, discovery and file check
	// intervals, the Node watch); Reconfigure applies a new one to a
	// running publisher.
	config.ClusterSettings
	// Debounce is the least time between two condition writes, so that a
	// burst of changes becomes one write.
	Debounce time.Duration
	// UserAgent identifies the daemon in API server logs.
	UserAgent string
	Logger    *slog.Logger
	// Observer is told of every write and every event given up (the
	// daemon's metrics); nil tells no one.
	Observer Observer
	// OnConnect, if set, is called from the worker each time it connects
	// (at start, and again after the kubeconfig or the client certificate
	// changed) with the client configuration and the node name, so that
	// other clients act as the same node without discovering it again
	// (internal/nodediag). ctx ends when that connection is dropped. It
	// must return at once.
	OnConnect func(ctx context.Context, rc *rest.Config, node string)
}

// Observer is what the publisher reports as it works. Calls come from the
// worker goroutine and must not block.
type Observer interface {
	// Write reports one API request that changes the cluster and how it
	// ended; err nil is success.
	Write(kind string, err error)
	// EventsDropped reports n occurrences of findings that will never be
	// delivered as events, and why.
	EventsDropped(why string, n int)
}

// Kinds of writes and reasons for dropping, as the Observer hears them.
const (
	WriteNodeStatus = "node_status"
	WriteEvent      = "event"
	// DropRateLimited: the reason already had MaxPendingEventsPerReason distinct
	// events waiting.
	DropRateLimited = "rate_limited"
	// DropRejected: the API server refused the event for good (invalid).
	DropRejected = "rejected"
	// DropExpired: the finding was older than an hour when credentials
	// appeared (the API server would drop it within the hour anyway).
	DropExpired = "expired"
)

type noObserver struct{}

func (noObserver) Write(string, error)       {}
func (noObserver) EventsDropped(string, int) {}

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
	prior    *priorRun
	// seenState is set by the first Publish: only that one shows the link
	// of the previous run; later ones show our own reports.
	seenState bool
	// settings is a new cluster section from Reconfigure, not yet applied.
	settings *config.ClusterSettings
	wake     chan struct{}

	// dial makes the API client (dialKubeconfig).
	dial dialFunc
}

var (
	_ publish.Publisher = (*Publisher)(nil)
	_ publish.Starter   = (*Publisher)(nil)
)

// New checks cfg and returns a Publisher; nothing happens until Start.
func New(cfg Config) (*Publisher, error) {
	// Zero means the default.
	cfg.ClusterSettings = cfg.ClusterSettings.WithDefaults()
	cfg.Debounce = cmp.Or(cfg.Debounce, DefaultDebounce)
	cfg.Root = cmp.Or(cfg.Root, "/")
	cfg.UserAgent = cmp.Or(cfg.UserAgent, Component)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	if key, err := cfg.ClusterSettings.Check(); err != nil {
		return nil, fmt.Errorf("cluster.%s: %w", key, err)
	}
	if cfg.Debounce < 0 {
		return nil, fmt.Errorf("cluster debounce %v: must not be negative", cfg.Debounce)
	}
	return &Publisher{cfg: cfg, log: cfg.Logger.With("subsystem", "cluster"), wake: make(chan struct{}, 1), dial: dialKubeconfig}, nil
}

// Reconfigure implements publish.Reconfigurable: config.yaml's cluster
// section, at start and after every reload. The worker applies it at its
// next turn.
func (p *Publisher) Reconfigure(cfg *config.Config) {
	s := cfg.Cluster.WithDefaults()
	if key, err := s.Check(); err != nil {
		// config.Parse refuses such a file, so this is a caller's bug.
		p.log.Error("cluster settings refused; keeping the current ones", "key", "cluster."+key, "err", err)
		return
	}
	p.mu.Lock()
	p.settings = &s
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// priorRun is what the state file kept from the previous run: its link
// (for the dropped count, and so that a stale "connected" is replaced) and
// the events it sent.
type priorRun struct {
	link   *state.ClusterLink
	events []state.SentEvent
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
		if !p.seenState {
			p.prior = &priorRun{events: slices.Clone(u.State.SentEvents)}
			if u.State.Cluster != nil {
				l := *u.State.Cluster
				p.prior.link = &l
			}
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
		eventSync: eventSync{
			events:  newEventQueue(p.cfg.EventBurst, p.cfg.EventsPerMinute, p.cfg.MaxPendingEventsPerReason),
			budget:  newBucket(p.cfg.WriteBurst, p.cfg.WritesPerMinute, time.Now()),
			dropLog: map[string]int{},
		},
		link: link{logged: map[string]time.Time{}},
	}
	go w.run(ctx)
}

// worker owns everything below; only its goroutine touches it. Its state
// is in four parts, one per concern, each with the methods that keep it in
// a file of its own: connection.go, conditions.go, eventsend.go, link.go.
type worker struct {
	p   *Publisher
	cfg *Config
	fb  publish.Feedback
	log *slog.Logger

	connection
	conditionSync
	eventSync
	link
}

// connection is the API server client and what finding it takes.
type connection struct {
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
	stopConn       context.CancelFunc
	noKubeconfig   bool
}

// conditionSync is what we want on the Node, what we last wrote, and what
// the watch says is there.
type conditionSync struct {
	want map[string]condition.Condition
	// owned are the types of ours (state.OwnedConditions).
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
}

// eventSync is the events waiting, their budgets and their retries.
type eventSync struct {
	events        *eventQueue
	eventRetryAt  time.Time
	eventFailures int
	budget        *bucket
	// sentAcks are the outbox records of events sent since the last
	// report.
	sentAcks  []uint64
	dropLog   map[string]int
	dropLogAt time.Time
}

// link is how the connection is doing, as reported to the pipeline (the
// state file's ClusterLink) and to the log.
type link struct {
	connected   bool
	lastSuccess time.Time
	lastErr     string
	reported    state.ClusterLink
	linkSent    bool
	// restored is set once the first Publish handed over the state of the
	// previous run; report says nothing before.
	restored bool
	// reportedEvents is the memory of sent events last reported.
	reportedEvents []state.SentEvent
	eventsReported bool
	hadLink        bool // the state file holds a link from an earlier run
	logged         map[string]time.Time
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
	settings := w.p.settings
	w.p.settings = nil
	w.p.mu.Unlock()
	if settings != nil && *settings != w.cfg.ClusterSettings {
		w.reconfigure(*settings)
	}
	if prior != nil {
		w.events.restore(prior.events, time.Now())
		w.restored = true
	}
	if prior != nil && prior.link != nil {
		w.events.droppedTotal += prior.link.EventsDropped
		w.hadLink = true
	}
	var drop []uint64
	for _, o := range inbox {
		if !w.events.add(o) {
			drop = append(drop, o.ID)
			w.dropLog[o.Finding.Reason]++
			w.cfg.Observer.EventsDropped(DropRateLimited, occurrences(&o.Finding))
		}
	}
	if len(drop) > 0 {
		w.fb.Ack(drop...)
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
