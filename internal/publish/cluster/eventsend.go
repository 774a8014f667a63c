package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

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
		w.cfg.Observer.Write(WriteEvent, err)
		done := time.Now()
		if err != nil && isRejected(err) {
			// Sending it again would be refused again and hold up every
			// event behind it.
			rb.refund()
			w.events.done(g)
			w.events.drop(g.key.reason, g.count)
			w.cfg.Observer.EventsDropped(DropRejected, g.count)
			w.sentAcks = append(w.sentAcks, g.ids...)
			w.logOnce("rejected:"+g.key.reason, 10*time.Minute, slog.LevelError, "API server rejected an event; dropped",
				"node", w.node, "reason", g.key.reason, "count", g.count, "err", err)
			continue
		}
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
	w.cfg.Observer.EventsDropped(DropExpired, n)
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
