package cluster

import (
	"math"
	"time"
)

// bucket is a token bucket: burst tokens, refilled at perMinute. It bounds
// what one node can send when a fleet-wide problem makes every node report
// at once.
type bucket struct {
	tokens float64
	burst  float64
	perSec float64
	last   time.Time
}

func newBucket(burst int, perMinute float64, now time.Time) *bucket {
	return &bucket{tokens: float64(burst), burst: float64(burst), perSec: perMinute / 60, last: now}
}

func (b *bucket) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.perSec)
		b.last = now
	}
}

// ready reports whether a token is available without taking it.
func (b *bucket) ready(now time.Time) bool {
	b.refill(now)
	return b.tokens >= 1
}

// take takes a token if one is available.
func (b *bucket) take(now time.Time) bool {
	if !b.ready(now) {
		return false
	}
	b.tokens--
	return true
}

// refund returns a token taken for a call that never reached the server.
func (b *bucket) refund() {
	b.tokens = math.Min(b.burst, b.tokens+1)
}

// next returns when the next token is available.
func (b *bucket) next(now time.Time) time.Time {
	b.refill(now)
	if b.tokens >= 1 {
		return now
	}
	if b.perSec <= 0 {
		return now.Add(24 * time.Hour)
	}
	return now.Add(time.Duration((1 - b.tokens) / b.perSec * float64(time.Second)))
}
