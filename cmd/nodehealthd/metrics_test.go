package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
)

// TestMetricsLoopbackByDefault starts the metrics subsystem with its default
// address (only the port changed to a free one) and checks that the
// endpoint answers on loopback and not on any other address of this host.
func TestMetricsLoopbackByDefault(t *testing.T) {
	o := defaultOptions()
	host, _, err := net.SplitHostPort(o.metricsAddress)
	if err != nil {
		t.Fatalf("default --metrics-address %q: %v", o.metricsAddress, err)
	}
	o.metricsAddress = net.JoinHostPort(host, "0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(ctx, slog.New(slog.DiscardHandler), &o, &config.Config{}, io.Discard)
	e.setupMetrics()
	if e.metricsAddr == nil {
		t.Fatal("metrics endpoint not listening")
	}
	if len(e.opts.Publishers) != 1 {
		t.Errorf("publishers = %d, want the metrics publisher", len(e.opts.Publishers))
	}
	bound := e.metricsAddr.(*net.TCPAddr)
	if !bound.IP.IsLoopback() {
		t.Errorf("default metrics address bound to %s, want loopback", bound)
	}
	port := bound.Port

	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + "/metrics")
	if err != nil {
		t.Fatalf("loopback scrape: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("loopback scrape: %s", resp.Status)
	}

	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		tried++
		target := net.JoinHostPort(ipn.IP.String(), strconv.Itoa(port))
		c, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("metrics endpoint reachable on non-loopback address %s", target)
		}
	}
	if tried == 0 {
		t.Skip("this host has no non-loopback address to try")
	}
}
