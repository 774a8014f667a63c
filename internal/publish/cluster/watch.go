package cluster

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
)

// Watch timeouts are long and randomised: each renewal is a request, and
// a fleet of nodes must not renew in step.
const (
	minWatchTimeout = 60 * time.Minute
	maxWatchTimeout = 120 * time.Minute
)

// nodeObs is what the watch learnt.
type nodeObs struct {
	// hasNode says node is meaningful: nil means the Node does not exist.
	hasNode bool
	node    *v1Node
	// reachable says the API server answered a list or watch.
	reachable bool
}

// obsSlot hands the latest observation to the worker; intermediate
// versions of the Node are of no interest.
type obsSlot struct {
	mu     sync.Mutex
	latest nodeObs
	fresh  bool
	signal chan struct{}
}

func newObsSlot() *obsSlot { return &obsSlot{signal: make(chan struct{}, 1)} }

func (s *obsSlot) put(o nodeObs) {
	s.mu.Lock()
	if o.hasNode {
		s.latest.hasNode, s.latest.node = true, o.node
	}
	s.latest.reachable = s.latest.reachable || o.reachable
	s.fresh = true
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *obsSlot) take() (nodeObs, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.fresh {
		return nodeObs{}, false
	}
	o := s.latest
	s.latest, s.fresh = nodeObs{}, false
	return o, true
}

// watchNode follows the single Node object, which a node identity may
// watch (field selector on its own name). It lets the worker notice at once
// that the Node was re-registered or that another client overwrote our
// conditions, without polling it.
func watchNode(ctx context.Context, a api, node string, out *obsSlot, log *slog.Logger) {
	(&nodeWatch{api: a, node: node, out: out, log: log, sleep: sleep}).run(ctx)
}

// nodeWatch is one watchNode loop.
type nodeWatch struct {
	api  api
	node string
	out  *obsSlot
	log  *slog.Logger
	// sleep waits d unless ctx ends first; tests replace it to follow the
	// backoff without waiting.
	sleep func(ctx context.Context, d time.Duration) bool

	fails int
	// refused: in an episode of 401/403 answers, which was logged.
	refused bool
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (nw *nodeWatch) run(ctx context.Context) {
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, requestTimeout)
		list, err := nw.api.listNode(lctx, nw.node)
		cancel()
		if err != nil {
			if !nw.failed(ctx, "list", err) {
				return
			}
			continue
		}
		nw.answered()
		o := nodeObs{hasNode: true, reachable: true}
		if len(list.Items) > 0 {
			o.node = &list.Items[0]
		}
		nw.out.put(o)
		rv := list.ResourceVersion
		for ctx.Err() == nil {
			started := time.Now()
			timeout := minWatchTimeout + rand.N(maxWatchTimeout-minWatchTimeout)
			w, err := nw.api.watchNode(ctx, nw.node, rv, timeout)
			if err != nil {
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					break
				}
				if !nw.failed(ctx, "watch", err) {
					return
				}
				continue
			}
			nw.answered()
			nw.out.put(nodeObs{reachable: true})
			var relist bool
			rv, relist = follow(w, rv, nw.out)
			w.Stop()
			if relist {
				break
			}
			// A watch that ends at once (the server closing it, a proxy)
			// must not turn into a request loop.
			if time.Since(started) < 5*time.Second {
				nw.fails++
				if !nw.sleep(ctx, backoff(nw.fails, 30*time.Second)) {
					return
				}
			}
		}
	}
}

// failed waits before the next try after a failed list or watch, and says
// whether to go on. A refusal (401, 403: credentials of another node, a
// missing permission) lasts until someone fixes the node, so it is retried
// as rarely as refused writes and logged once per episode. Other failures
// (an unreachable server, a failing credential plugin, which logs itself)
// show in the worker's writes.
func (nw *nodeWatch) failed(ctx context.Context, what string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	nw.fails++
	limit := 30 * time.Second
	switch {
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		limit = refusedBackoff
		if !nw.refused {
			nw.refused = true
			nw.log.Warn("API server refuses to let us read our own Node; retrying with backoff", "node", nw.node,
				"what", what, "err", err, "retry_max", limit)
			break
		}
		nw.log.Debug("API server still refuses to let us read our own Node", "node", nw.node, "what", what, "err", err, "failures", nw.fails)
	default:
		nw.log.Debug("cannot read own Node", "node", nw.node, "what", what, "err", err)
	}
	return nw.sleep(ctx, backoff(nw.fails, limit))
}

// answered notes a list or watch the API server accepted.
func (nw *nodeWatch) answered() {
	nw.fails = 0
	if nw.refused {
		nw.refused = false
		nw.log.Info("API server lets us read our own Node again", "node", nw.node)
	}
}

// follow reads a watch until it ends and returns the resourceVersion to
// resume from, and whether the server said that version is gone.
func follow(w watch.Interface, rv string, out *obsSlot) (string, bool) {
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Added, watch.Modified:
			if n, ok := ev.Object.(*v1Node); ok {
				rv = n.ResourceVersion
				out.put(nodeObs{hasNode: true, node: n})
			}
		case watch.Deleted:
			if n, ok := ev.Object.(*v1Node); ok {
				rv = n.ResourceVersion
			}
			out.put(nodeObs{hasNode: true})
		case watch.Bookmark:
			if n, ok := ev.Object.(*v1Node); ok {
				rv = n.ResourceVersion
			}
		case watch.Error:
			err := apierrors.FromObject(ev.Object)
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				return rv, true
			}
		}
	}
	return rv, false
}

// refusedBackoff caps the backoff of calls refused (401, 403) or made
// without credentials: they fail until someone fixes the node, and a fleet
// of misconfigured nodes must not keep the API server busy.
const refusedBackoff = 5 * time.Minute

// backoff is exponential from 500ms to max with ±20% jitter, so that
// nodes that failed together do not retry together.
func backoff(failures int, max time.Duration) time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
