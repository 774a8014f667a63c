package daemontest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// client bounds a request to a daemon that stopped answering.
var client = &http.Client{Timeout: 10 * time.Second}

// Get fetches a path of the daemon's HTTP endpoint at addr.
func Get(addr, path string) (code int, body string, err error) {
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Scrape returns the samples of the daemon's /metrics at addr by series,
// as the exposition names them (`name{label="v"}`).
func Scrape(addr string) (map[string]float64, error) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// FreeAddr returns a loopback address no one listens on, for a flag that
// must name the address before the daemon starts.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

var servingMetrics = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

// MetricsAddr returns the address the daemon says it serves /metrics on
// (--metrics-address 127.0.0.1:0 picks a free port), from its log.
func MetricsAddr(log string) (string, bool) {
	m := servingMetrics.FindStringSubmatch(log)
	if m == nil {
		return "", false
	}
	return m[1], true
}
