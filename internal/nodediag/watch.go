package nodediag

import (
	"cmp"
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
)

// Watches are renewed at random times in this range, so that a fleet of
// nodes does not renew in step.
const (
	minWatchTimeout = 60 * time.Minute
	maxWatchTimeout = 120 * time.Minute
)

// Backoff limits by why a list or watch failed. A missing CRD (a cluster
// without the EKS add-on or packaging/kubernetes/nodediagnostic-crd.yaml,
// 404) and a refusal (no RBAC: the API server authorizes before it looks
// for the resource, so a cluster with neither answers 403) last until an
// operator acts, are the normal state of most clusters, and every node of
// the fleet asks: each waits notServedBackoff from the first answer (one
// list an hour, docs/cluster.md's request budget). A reconnection (a
// rotated certificate) or a restart asks again at once.
const (
	notServedBackoff = time.Hour
	otherBackoff     = 30 * time.Second
)

// listTimeout bounds one list request.
const listTimeout = 30 * time.Second

// follower lists and watches the NodeDiagnostic named after the node and
// hands each version it learns to seen (nil: there is none).
type follower struct {
	api  api
	node string
	seen func(*NodeDiagnostic)
	log  *slog.Logger
	// sleep waits d unless ctx ends first; tests replace it.
	sleep func(ctx context.Context, d time.Duration) bool

	fails int
	// quiet is the kind of the current episode of failures that was
	// logged ("missing", "refused"), so that it is logged once.
	quiet string
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

func (f *follower) run(ctx context.Context) {
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, listTimeout)
		list, err := f.api.list(lctx, f.node)
		cancel()
		if err != nil {
			if !f.failed(ctx, "list", err) {
				return
			}
			continue
		}
		f.answered()
		var obj *NodeDiagnostic
		for i := range list.Items {
			if list.Items[i].Name == f.node {
				obj = &list.Items[i]
			}
		}
		f.seen(obj)
		rv := list.ResourceVersion
		for ctx.Err() == nil {
			started := time.Now()
			w, err := f.api.watch(ctx, f.node, rv, minWatchTimeout+rand.N(maxWatchTimeout-minWatchTimeout))
			if err != nil {
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					break
				}
				if !f.failed(ctx, "watch", err) {
					return
				}
				continue
			}
			var relist bool
			rv, relist = f.follow(w, rv)
			w.Stop()
			if relist {
				break
			}
			// A watch the server ends at once (a proxy, the CRD being
			// deleted) must not become a request loop.
			if time.Since(started) < 5*time.Second {
				f.fails++
				if !f.sleep(ctx, backoff(f.fails, otherBackoff)) {
					return
				}
			}
		}
	}
}

// follow reads a watch until it ends and returns the resourceVersion to
// resume from, and whether that version is gone.
func (f *follower) follow(w watch.Interface, rv string) (string, bool) {
	for ev := range w.ResultChan() {
		d, _ := ev.Object.(*NodeDiagnostic)
		switch ev.Type {
		case watch.Added, watch.Modified:
			if d != nil && d.Name == f.node {
				rv = d.ResourceVersion
				f.seen(d)
			}
		case watch.Deleted:
			if d != nil {
				rv = d.ResourceVersion
			}
			f.seen(nil)
		case watch.Bookmark:
			if d != nil {
				rv = d.ResourceVersion
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

// failed logs and counts a failed list or watch, waits before the next
// try, and says whether to go on.
func (f *follower) failed(ctx context.Context, what string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	f.fails++
	limit, kind := otherBackoff, ""
	switch {
	case apierrors.IsNotFound(err):
		limit, kind = notServedBackoff, "missing"
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		limit, kind = notServedBackoff, "refused"
	}
	watchFailures.WithLabelValues(cmp.Or(kind, "other")).Inc()
	switch {
	case kind == "" || kind == f.quiet:
		f.log.Debug("cannot read the node's NodeDiagnostic; retrying", "node", f.node, "what", what, "err", err, "failures", f.fails)
	case kind == "missing":
		f.log.Info("the API server has no NodeDiagnostic resource (CRD not installed): requests from the cluster are off until it is",
			"node", f.node, "err", err, "check_every", limit, "install", "packaging/kubernetes/nodediagnostic-crd.yaml")
	default:
		f.log.Info("the API server does not let the node read its NodeDiagnostic (RBAC not installed): requests from the cluster are off until it does",
			"node", f.node, "what", what, "err", err, "retry_max", limit, "install", "packaging/kubernetes/nodediagnostic-rbac.yaml")
	}
	if kind != "" {
		f.quiet = kind
	}
	if kind != "" {
		return f.sleep(ctx, backoff(100, limit))
	}
	return f.sleep(ctx, backoff(f.fails, limit))
}

// answered notes a list the API server accepted.
func (f *follower) answered() {
	if f.quiet != "" {
		f.log.Info("the node can read its NodeDiagnostic again: serving requests from the cluster", "node", f.node)
	}
	f.fails, f.quiet = 0, ""
}

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
