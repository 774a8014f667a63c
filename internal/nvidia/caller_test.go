package nvidia

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCallerRunsCalls(t *testing.T) {
	c := NewCaller(testLogger(t))
	v := 0
	if err := c.Do(context.Background(), "op", time.Second, func() { v = 42 }); err != nil || v != 42 {
		t.Fatalf("Do = %v, v = %d", err, v)
	}
}

func TestCallerRecoversPanics(t *testing.T) {
	c := NewCaller(testLogger(t))
	err := c.Do(context.Background(), "op", time.Second, func() { panic("Device.GetFooFunc: method is nil") })
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("Do = %v, want a panic error", err)
	}
	// The worker survives.
	if err := c.Do(context.Background(), "op", time.Second, func() {}); err != nil {
		t.Fatal(err)
	}
}

func TestCallerHungCallTimesOutWithoutPilingUpGoroutines(t *testing.T) {
	c := NewCaller(testLogger(t))
	release := make(chan struct{})
	start := time.Now()
	err := c.Do(context.Background(), "nvmlDeviceGetTotalEccErrors", 50*time.Millisecond, func() { <-release })
	var he *HungError
	if !errors.As(err, &he) || !errors.Is(err, ErrHung) || he.Refused || he.Op != "nvmlDeviceGetTotalEccErrors" {
		t.Fatalf("Do = %v, want a HungError", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("timed out after %s, want about 50ms", took)
	}
	if op, _, stuck := c.Stuck(); !stuck || op != "nvmlDeviceGetTotalEccErrors" {
		t.Fatalf("Stuck = %q %v", op, stuck)
	}
	returned := c.Returned()
	if returned == nil {
		t.Fatal("Returned() is nil while a call is stuck")
	}

	// Further calls are refused at once, and start nothing.
	before := runtime.NumGoroutine()
	called := false
	for i := 0; i < 100; i++ {
		t0 := time.Now()
		err := c.Do(context.Background(), "next", 10*time.Second, func() { called = true })
		if !errors.As(err, &he) || !he.Refused {
			t.Fatalf("call %d while stuck: %v, want refused", i, err)
		}
		if time.Since(t0) > time.Second {
			t.Fatalf("a refused call waited %s", time.Since(t0))
		}
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Fatalf("goroutines grew from %d to %d while NVML was stuck", before, after)
	}
	if called {
		t.Fatal("a refused call ran")
	}

	// The driver comes back: calls work again.
	close(release)
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Returned() not closed after the stuck call returned")
	}
	if err := c.Do(context.Background(), "again", time.Second, func() { called = true }); err != nil || !called {
		t.Fatalf("after recovery: %v, called %v", err, called)
	}
	if _, _, stuck := c.Stuck(); stuck {
		t.Fatal("still stuck")
	}
}

func TestCallerHonoursContext(t *testing.T) {
	c := NewCaller(testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	release := make(chan struct{})
	start := time.Now()
	err := c.Do(ctx, "slow", time.Minute, func() { <-release })
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("Do = %v after %s, want the context's error at once", err, time.Since(start))
	}
	// Giving up on a cancelled context is not a hang.
	if _, _, stuck := c.Stuck(); stuck {
		t.Fatal("marked stuck after a cancelled context")
	}
	// The next call waits for the worker and then runs.
	close(release)
	ran := false
	if err := c.Do(context.Background(), "next", 5*time.Second, func() { ran = true }); err != nil || !ran {
		t.Fatalf("next call: %v, ran %v", err, ran)
	}
}
