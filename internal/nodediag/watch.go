package nodediag

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/kubewatch"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
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

func (f *follower) run(ctx context.Context) {
	kubewatch.Follow(ctx, kubewatch.Source[*NodeDiagnostic]{
		List: func(ctx context.Context) (*NodeDiagnostic, bool, string, error) {
			lctx, cancel := context.WithTimeout(ctx, listTimeout)
			defer cancel()
			list, err := f.api.list(lctx, f.node)
			if err != nil {
				return nil, false, "", err
			}
			for i := range list.Items {
				if list.Items[i].Name == f.node {
					return &list.Items[i], true, list.ResourceVersion, nil
				}
			}
			return nil, false, list.ResourceVersion, nil
		},
		Watch: func(ctx context.Context, rv string, timeout time.Duration) (watch.Interface, error) {
			return f.api.watch(ctx, f.node, rv, timeout)
		},
	}, f, f.sleep, otherBackoff)
}

// Seen implements kubewatch.Handler.
func (f *follower) Seen(d *NodeDiagnostic, found bool) {
	switch {
	case !found:
		f.seen(nil)
	case d.Name == f.node:
		f.seen(d)
	}
}

// Failed implements kubewatch.Handler: it logs and counts a failed list or
// watch, waits before the next try, and says whether to go on.
func (f *follower) Failed(ctx context.Context, what string, err error) bool {
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
	if kind == "" {
		return f.sleep(ctx, kubewatch.Backoff(f.fails, limit))
	}
	f.quiet = kind
	return f.sleep(ctx, kubewatch.Backoff(100, limit))
}

// Answered implements kubewatch.Handler: a list or watch the API server
// accepted.
func (f *follower) Answered() {
	if f.quiet != "" {
		f.log.Info("the node can read its NodeDiagnostic again: serving requests from the cluster", "node", f.node)
	}
	f.fails, f.quiet = 0, ""
}
