// Package kubewatch follows one named Kubernetes object (the node's Node,
// its NodeDiagnostic) with a list and then watches resumed from the last
// resourceVersion, relisting when that version is gone. It is the part of
// client-go's reflector the daemon needs, without its caches: the cluster
// publisher and the NodeDiagnostic server each follow one object.
package kubewatch

import (
	"context"
	"math/rand/v2"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// Watch timeouts are long and randomised: each renewal is a request, and a
// fleet of nodes must not renew in step.
const (
	minWatchTimeout = 60 * time.Minute
	maxWatchTimeout = 120 * time.Minute
)

// quickEnd is how long a watch must last not to count as ended at once.
const quickEnd = 5 * time.Second

// Source reads the object.
type Source[T metav1.Object] struct {
	// List returns the object (found false: there is none) and the
	// resourceVersion to watch from.
	List func(ctx context.Context) (obj T, found bool, rv string, err error)
	// Watch watches the object from rv for at most timeout.
	Watch func(ctx context.Context, rv string, timeout time.Duration) (watch.Interface, error)
}

// Handler is told what Follow learns, and decides about failures.
type Handler[T metav1.Object] interface {
	// Seen reports the object, or (found false) that there is none.
	Seen(obj T, found bool)
	// Answered reports a list or watch the API server accepted.
	Answered()
	// Failed reports a failed list or watch ("list", "watch": refused,
	// or ended by an error event), waits before the next try and says
	// whether to go on.
	Failed(ctx context.Context, what string, err error) bool
}

// Follow lists and watches until ctx ends or the handler gives up. A watch
// the server ends at once (a proxy, a deleted CRD) is retried with backoff
// up to quickMax, never in a request loop; sleep waits unless ctx ends (tests
// replace it).
func Follow[T metav1.Object](ctx context.Context, src Source[T], h Handler[T], sleep func(context.Context, time.Duration) bool, quickMax time.Duration) {
	quick := 0
	for ctx.Err() == nil {
		obj, found, rv, err := src.List(ctx)
		if err != nil {
			if !h.Failed(ctx, "list", err) {
				return
			}
			continue
		}
		h.Answered()
		h.Seen(obj, found)
		for ctx.Err() == nil {
			started := time.Now()
			w, err := src.Watch(ctx, rv, minWatchTimeout+rand.N(maxWatchTimeout-minWatchTimeout))
			if err != nil {
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					break
				}
				if !h.Failed(ctx, "watch", err) {
					return
				}
				continue
			}
			h.Answered()
			var relist bool
			rv, relist, err = follow(w, rv, h)
			w.Stop()
			if relist {
				break
			}
			lasted := time.Since(started)
			if err != nil && !h.Failed(ctx, "watch", err) {
				return
			}
			if lasted >= quickEnd {
				quick = 0
				continue
			}
			quick++
			if !sleep(ctx, Backoff(quick, quickMax)) {
				return
			}
		}
	}
}

// follow reads a watch until it ends and returns the resourceVersion to
// resume from, whether the server said that version is gone, and the error
// that ended it otherwise (an internal error, an object that does not
// decode), which is the handler's to count and log.
func follow[T metav1.Object](w watch.Interface, rv string, h Handler[T]) (string, bool, error) {
	for ev := range w.ResultChan() {
		obj, ok := ev.Object.(T)
		if ok {
			rv = obj.GetResourceVersion()
		}
		switch ev.Type {
		case watch.Added, watch.Modified:
			if ok {
				h.Seen(obj, true)
			}
		case watch.Deleted:
			var none T
			h.Seen(none, false)
		case watch.Error:
			err := apierrors.FromObject(ev.Object)
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				return rv, true, nil
			}
			return rv, false, err
		}
	}
	return rv, false, nil
}

// Sleep waits d unless ctx ends first, and says whether it waited.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Backoff is exponential from 500ms to max with ±20% jitter, so that nodes
// that failed together do not retry together.
func Backoff(failures int, max time.Duration) time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
