package cluster

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/kubewatch"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
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
	(&nodeWatch{api: a, node: node, out: out, log: log, sleep: kubewatch.Sleep}).run(ctx)
}

// nodeWatch is one watchNode loop: the kubewatch.Handler that hands what
// it learns to the worker.
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

func (nw *nodeWatch) run(ctx context.Context) {
	kubewatch.Follow(ctx, kubewatch.Source[*v1Node]{
		List: func(ctx context.Context) (*v1Node, bool, string, error) {
			lctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			list, err := nw.api.listNode(lctx, nw.node)
			if err != nil || len(list.Items) == 0 {
				return nil, false, listRV(list), err
			}
			return &list.Items[0], true, list.ResourceVersion, nil
		},
		Watch: func(ctx context.Context, rv string, timeout time.Duration) (watch.Interface, error) {
			return nw.api.watchNode(ctx, nw.node, rv, timeout)
		},
	}, nw, nw.sleep, 30*time.Second)
}

func listRV(l *v1NodeList) string {
	if l == nil {
		return ""
	}
	return l.ResourceVersion
}

// Seen implements kubewatch.Handler: the Node, or (nil) that it is gone.
func (nw *nodeWatch) Seen(n *v1Node, found bool) {
	if !found {
		n = nil
	}
	nw.out.put(nodeObs{hasNode: true, node: n})
}

// Failed implements kubewatch.Handler: it waits before the next try after
// a failed list or watch, and says whether to go on. A refusal (401, 403:
// credentials of another node, a missing permission) lasts until someone
// fixes the node, so it is retried as rarely as refused writes and logged
// once per episode. Other failures (an unreachable server, a failing
// credential plugin, which logs itself) show in the worker's writes.
func (nw *nodeWatch) Failed(ctx context.Context, what string, err error) bool {
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
	return nw.sleep(ctx, kubewatch.Backoff(nw.fails, limit))
}

// Answered implements kubewatch.Handler: the API server is reachable.
func (nw *nodeWatch) Answered() {
	nw.fails = 0
	if nw.refused {
		nw.refused = false
		nw.log.Info("API server lets us read our own Node again", "node", nw.node)
	}
	nw.out.put(nodeObs{reachable: true})
}

// refusedBackoff caps the backoff of calls refused (401, 403) or made
// without credentials: they fail until someone fixes the node, and a fleet
// of misconfigured nodes must not keep the API server busy.
const refusedBackoff = 5 * time.Minute
