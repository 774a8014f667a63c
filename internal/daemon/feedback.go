package daemon

import (
	"slices"

	"github.com/nodehealthd/nodehealthd/internal/state"
)

// Ack implements publish.Feedback.
func (d *Daemon) Ack(ids ...uint64) {
	d.fbMu.Lock()
	d.acks = append(d.acks, ids...)
	d.fbMu.Unlock()
	d.kick()
}

func (d *Daemon) kick() {
	select {
	case d.fbKick <- struct{}{}:
	default:
	}
}

// SetClusterLink implements publish.Feedback.
func (d *Daemon) SetClusterLink(l state.ClusterLink) {
	d.fbMu.Lock()
	d.link = &l
	d.fbMu.Unlock()
	d.kick()
}

// SetSentEvents implements publish.Feedback.
func (d *Daemon) SetSentEvents(evs []state.SentEvent) {
	d.fbMu.Lock()
	d.sentEvents, d.haveSentEvents = evs, true
	d.fbMu.Unlock()
	d.kick()
}

// applyFeedback moves publisher feedback into the state.
func (d *Daemon) applyFeedback() {
	d.fbMu.Lock()
	acks, link := d.acks, d.link
	evs, haveEvs := d.sentEvents, d.haveSentEvents
	d.acks, d.link = nil, nil
	d.sentEvents, d.haveSentEvents = nil, false
	d.fbMu.Unlock()
	if haveEvs && !slices.Equal(d.st.SentEvents, evs) {
		d.st.SentEvents = evs
		d.dirty = true
	}
	if len(acks) > 0 {
		d.st.Ack(acks...)
		d.dirty = true
	}
	if link != nil && (d.st.Cluster == nil || !d.st.Cluster.Equal(*link)) {
		d.st.Cluster = link
		d.dirty = true
	}
}
