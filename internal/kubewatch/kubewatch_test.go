package kubewatch

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

type handler struct {
	seen     []string // resourceVersion, or "none"
	answered int
	failed   []string
}

func (h *handler) Seen(o *metav1.PartialObjectMetadata, found bool) {
	if !found {
		h.seen = append(h.seen, "none")
		return
	}
	h.seen = append(h.seen, o.ResourceVersion)
}
func (h *handler) Answered() { h.answered++ }
func (h *handler) Failed(ctx context.Context, what string, err error) bool {
	h.failed = append(h.failed, what)
	return ctx.Err() == nil
}

// A watch resumes from the last version seen; a version the server no
// longer has means a new list; a failed list is the handler's to decide.
func TestFollowResumesAndRelists(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &handler{}
	lists, watchedFrom := 0, []string{}
	src := Source[*metav1.PartialObjectMetadata]{
		List: func(context.Context) (*metav1.PartialObjectMetadata, bool, string, error) {
			lists++
			switch lists {
			case 1:
				return nil, false, "", errors.New("connection refused")
			case 2:
				return meta("10"), true, "10", nil
			}
			cancel()
			return nil, false, "30", nil
		},
		Watch: func(_ context.Context, rv string, _ time.Duration) (watch.Interface, error) {
			watchedFrom = append(watchedFrom, rv)
			w := watch.NewFakeWithChanSize(3, false)
			switch len(watchedFrom) {
			case 1:
				w.Modify(meta("11"))
				w.Delete(meta("12"))
				w.Stop()
			case 2:
				w.Error(&apierrors.NewResourceExpired("too old").ErrStatus)
			}
			return w, nil
		},
	}
	Follow(ctx, src, h, func(ctx context.Context, _ time.Duration) bool { return ctx.Err() == nil }, time.Second)
	if len(h.failed) != 1 || h.failed[0] != "list" {
		t.Errorf("failures %v, want the first list", h.failed)
	}
	if want := []string{"10", "11", "none", "none"}; !slices.Equal(h.seen, want) {
		t.Errorf("seen %v, want %v", h.seen, want)
	}
	if want := []string{"10", "12"}; !slices.Equal(watchedFrom, want) {
		t.Errorf("watched from %v, want %v (resumed after the last event)", watchedFrom, want)
	}
	if lists != 3 {
		t.Errorf("%d lists, want 3 (the expired version relisted)", lists)
	}
}

// A watch the server ends at once is retried with a growing backoff, not
// in a request loop.
func TestFollowBacksOffWatchesThatEndAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	src := Source[*metav1.PartialObjectMetadata]{
		List: func(context.Context) (*metav1.PartialObjectMetadata, bool, string, error) {
			return nil, false, "1", nil
		},
		Watch: func(context.Context, string, time.Duration) (watch.Interface, error) {
			w := watch.NewFake()
			w.Stop()
			return w, nil
		},
	}
	Follow(ctx, src, &handler{}, func(_ context.Context, d time.Duration) bool {
		waits = append(waits, d)
		return len(waits) < 6
	}, 8*time.Second)
	if len(waits) != 6 {
		t.Fatalf("waits %v", waits)
	}
	// Compared with the nominal doubling, not with the previous wait: two
	// jittered waits in a row can differ by less than 1.5x (1.2 then 1.6).
	nominal := 500 * time.Millisecond
	for i, w := range waits {
		if w < nominal*8/10 || w > nominal*12/10 {
			t.Errorf("wait %d is %v, want %v ±20%% (waits %v)", i, w, nominal, waits)
		}
		nominal = min(2*nominal, 8*time.Second)
	}
}

// Backoff doubles from 500ms up to its cap and never leaves ±20% of that.
func TestBackoffStaysWithinJitter(t *testing.T) {
	for i, nominal := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		failures := i + 1
		for range 200 {
			if d := Backoff(failures, 5*time.Second); d < nominal*8/10 || d > nominal*12/10 {
				t.Fatalf("Backoff(%d, 5s) = %v, want %v ±20%%", failures, d, nominal)
			}
		}
	}
}

func meta(rv string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{ResourceVersion: rv}}
}

// A watch the server ends with an error event other than an expired
// version (an internal error, an object that does not decode) is a failed
// watch for the handler to count and log, and is then resumed, not relisted.
func TestFollowReportsWatchErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &handler{}
	lists, watchedFrom := 0, []string{}
	src := Source[*metav1.PartialObjectMetadata]{
		List: func(context.Context) (*metav1.PartialObjectMetadata, bool, string, error) {
			lists++
			return meta("10"), true, "10", nil
		},
		Watch: func(_ context.Context, rv string, _ time.Duration) (watch.Interface, error) {
			watchedFrom = append(watchedFrom, rv)
			w := watch.NewFakeWithChanSize(2, false)
			if len(watchedFrom) == 1 {
				w.Modify(meta("11"))
				w.Error(&apierrors.NewInternalError(errors.New("unable to decode an event from the watch stream")).ErrStatus)
			} else {
				cancel()
			}
			w.Stop()
			return w, nil
		},
	}
	Follow(ctx, src, h, func(ctx context.Context, _ time.Duration) bool { return ctx.Err() == nil }, time.Second)
	if !slices.Equal(h.failed, []string{"watch"}) {
		t.Errorf("failures %v, want the watch that ended with an error", h.failed)
	}
	if want := []string{"10", "11"}; !slices.Equal(watchedFrom, want) || lists != 1 {
		t.Errorf("watched from %v after %d lists, want %v after 1 (resumed)", watchedFrom, lists, want)
	}
}
