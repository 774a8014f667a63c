package nvidia

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrHung is wrapped by the error of a call that did not return in time,
// and of every call refused while that call is still stuck in the driver.
var ErrHung = errors.New("NVML call did not return in time")

// HungError says which call is stuck and since when.
type HungError struct {
	Op    string
	Since time.Time
	// Refused is true for a call that was not started because an earlier
	// one is still stuck.
	Refused bool
}

func (e *HungError) Error() string {
	if e.Refused {
		return fmt.Sprintf("NVML is wedged: %s has not returned since %s", e.Op, e.Since.Format(time.RFC3339))
	}
	return fmt.Sprintf("NVML call %s did not return within %s", e.Op, time.Since(e.Since).Round(time.Second))
}

func (e *HungError) Unwrap() error { return ErrHung }

// Caller runs NVML calls on a single goroutine with a deadline. A call into
// a hung driver cannot be cancelled (it is a C call), so the caller gives
// up waiting instead and refuses further calls until the stuck one
// returns: at most one goroutine is ever blocked in NVML, however long the
// driver hangs. One Caller serves the whole process, so detector restarts
// (config reloads) do not start a second worker next to a stuck one.
type Caller struct {
	log  *slog.Logger
	once sync.Once
	reqs chan *job

	mu       sync.Mutex
	cur      *job
	op       string
	started  time.Time
	stuck    bool
	returned chan struct{} // closed when a stuck call returns
}

type job struct {
	op   string
	f    func()
	err  error
	done chan struct{}
}

// NewCaller returns a Caller; its worker starts with the first call.
func NewCaller(log *slog.Logger) *Caller {
	if log == nil {
		log = slog.Default()
	}
	return &Caller{log: log, reqs: make(chan *job)}
}

// Do runs f on the worker and waits at most timeout for it. It returns nil
// only when f has returned, so f's results may then be read; after any
// error f may still be running and its results must be ignored.
func (c *Caller) Do(ctx context.Context, op string, timeout time.Duration, f func()) error {
	c.once.Do(func() { go c.loop() })
	if err := c.refuse(); err != nil {
		return err
	}
	j := &job{op: op, f: f, done: make(chan struct{})}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	start := time.Now()
	select {
	case c.reqs <- j:
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		// Another caller's call holds the worker; it marks itself stuck.
		return &HungError{Op: op, Since: start, Refused: true}
	}
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		c.markStuck(j)
		return &HungError{Op: op, Since: start}
	}
}

// refuse returns the error for a call made while an earlier one is stuck.
func (c *Caller) refuse() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stuck {
		return &HungError{Op: c.op, Since: c.started, Refused: true}
	}
	return nil
}

func (c *Caller) markStuck(j *job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The job may have finished between the timer and the lock.
	if c.cur == j && !c.stuck {
		c.stuck = true
		c.returned = make(chan struct{})
		c.log.Error("NVML call is hung; NVML checks are suspended until it returns", "call", j.op, "since", c.started)
	}
}

// Stuck reports the call that is stuck, if any.
func (c *Caller) Stuck() (op string, since time.Time, stuck bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.op, c.started, c.stuck
}

// Returned is closed when the currently stuck call returns; nil when none
// is stuck.
func (c *Caller) Returned() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stuck {
		return nil
	}
	return c.returned
}

func (c *Caller) loop() {
	for j := range c.reqs {
		c.mu.Lock()
		c.cur, c.op, c.started = j, j.op, time.Now()
		c.mu.Unlock()
		j.err = run(j.f)
		c.mu.Lock()
		if c.stuck {
			c.log.Warn("hung NVML call returned; resuming NVML checks", "call", c.op, "after", time.Since(c.started).Round(time.Second))
			c.stuck = false
			close(c.returned)
		}
		c.cur, c.op = nil, ""
		c.mu.Unlock()
		close(j.done)
	}
}

// run calls f, turning a panic into an error: a bug in one check (or an
// unset method of a test mock) must not take the daemon down.
func run(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("NVML call panicked: %v", r)
		}
	}()
	f()
	return nil
}
