package nvidia

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestIMDSv2(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
				http.Error(w, "no ttl", http.StatusBadRequest)
				return
			}
			w.Write([]byte("tok-123"))
		case r.Method == http.MethodGet && r.URL.Path == "/latest/meta-data/instance-type":
			// IMDSv2 only: a request without the token is refused.
			if r.Header.Get("X-aws-ec2-metadata-token") != "tok-123" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			gets.Add(1)
			w.Write([]byte("p5.48xlarge\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	m := &IMDS{Endpoint: srv.URL}
	for i := 0; i < 3; i++ {
		it, err := m.InstanceType(context.Background())
		if err != nil || it != "p5.48xlarge" {
			t.Fatalf("InstanceType = %q, %v", it, err)
		}
	}
	if gets.Load() != 1 {
		t.Fatalf("IMDS asked %d times, want once (cached)", gets.Load())
	}
}

func TestIMDSFailureBacksOff(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	defer srv.Close()
	m := &IMDS{Endpoint: srv.URL}
	for i := 0; i < 5; i++ {
		if _, err := m.InstanceType(context.Background()); err == nil {
			t.Fatal("no error from a failing IMDS")
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d requests within the backoff, want 1", calls.Load())
	}
}

func TestIMDSTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	m := &IMDS{Endpoint: srv.URL, Timeout: 50 * time.Millisecond}
	start := time.Now()
	_, err := m.InstanceType(context.Background())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
}

func TestExpectedGPUs(t *testing.T) {
	if len(expectedGPUs) != 59 {
		t.Fatalf("%d instance types, want the 59 of detection.md's table", len(expectedGPUs))
	}
	for it, want := range map[string]int{
		"g4dn.xlarge": 1, "g4dn.12xlarge": 4, "g4dn.metal": 8, "g5.48xlarge": 8, "g5g.metal": 2,
		"g6e.24xlarge": 4, "g7e.12xlarge": 2, "gr6.8xlarge": 1, "p3.8xlarge": 4, "p4d.24xlarge": 8,
		"p5.4xlarge": 1, "p6-b300.48xlarge": 8, "p6e-gb200.36xlarge": 4,
	} {
		if got, ok := ExpectedGPUs(it); !ok || got != want {
			t.Errorf("%s: %d %v, want %d", it, got, ok, want)
		}
	}
	if _, ok := ExpectedGPUs("m5.large"); ok {
		t.Error("m5.large has an expected GPU count")
	}
}
