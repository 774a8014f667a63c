package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/nodehealthd/nodehealthd/internal/kubewatch"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

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
		return kubewatch.Backoff(failures, 30*time.Second)
	case what == whatConditions && apierrors.IsNotFound(err):
		w.lastErr = fmt.Sprintf("node %s is not registered (yet)", w.node)
		w.logOnce("notfound", 10*time.Minute, slog.LevelInfo, "Node not registered yet; retrying quietly", "node", w.node)
		return kubewatch.Backoff(failures, 30*time.Second)
	case apierrors.IsForbidden(err):
		w.lastErr += fmt.Sprintf(" (are the credentials node %s's?)", w.node)
		w.logOnce("forbidden:"+w.lastErr, 10*time.Minute, slog.LevelError, "API server refused the write", "node", w.node, "what", what, "err", err)
		return kubewatch.Backoff(failures, refusedBackoff)
	case apierrors.IsUnauthorized(err):
		w.unauthenticated = true
		w.logOnce("unauthorized", 10*time.Minute, slog.LevelError, "API server does not accept the kubelet credentials", "node", w.node, "what", what, "err", err)
		return kubewatch.Backoff(failures, refusedBackoff)
	}
	w.logOnce("error:"+what, time.Minute, slog.LevelWarn, "API call failed; retrying with backoff", "node", w.node, "what", what, "err", err, "failures", failures)
	return kubewatch.Backoff(failures, 30*time.Second)
}

// isRejected tells a request the API server will refuse however often it
// is sent (an invalid object) from one worth retrying.
func isRejected(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err)
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
	if !w.restored {
		// Nothing is said before the state of the previous run is seen:
		// a link or an event memory reported now would replace the saved
		// ones before the first Publish hands them over, and the events
		// of the last run would be created again instead of counted up.
		return
	}
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
	}
	if w.creds != nil {
		l.CredentialPath = w.creds.path
	}
	if !w.linkSent || !l.Equal(w.reported) {
		w.reported, w.linkSent = l, true
		w.fb.SetClusterLink(l)
	}
	// The memory of sent events goes before the acknowledgements of the
	// records they delivered: a restart in between must find the event to
	// count up, not create a second one.
	if evs := w.events.snapshot(time.Now()); !w.eventsReported || !slices.Equal(evs, w.reportedEvents) {
		w.reportedEvents, w.eventsReported = evs, true
		w.fb.SetSentEvents(evs)
	}
	if len(w.sentAcks) > 0 {
		w.fb.Ack(w.sentAcks...)
		w.sentAcks = nil
	}
}
