package daemontest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestLineWriterSplitsWrites(t *testing.T) {
	var got []string
	w := &lineWriter{line: func(b []byte) { got = append(got, string(b)) }}
	for _, p := range []string{"a", "b\nc\n", "", "d\ne"} {
		if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if strings.Join(got, "|") != "ab|c|d" {
		t.Errorf("lines %q, want ab, c, d (e not yet ended)", got)
	}
}

func TestMetricsAddrFromLog(t *testing.T) {
	addr, ok := MetricsAddr("time=x level=INFO msg=\"serving metrics\" addr=127.0.0.1:4242\n")
	if !ok || addr != "127.0.0.1:4242" {
		t.Errorf("MetricsAddr = %q, %v", addr, ok)
	}
	if _, ok := MetricsAddr("level=INFO msg=started\n"); ok {
		t.Error("an address found in a log that names none")
	}
}

func TestScrapeReadsSeries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# HELP a x\n# TYPE a counter\na 3\nb{reason=\"X Y\"} 2.5\nbad line\n")
	}))
	defer srv.Close()
	m, err := Scrape(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["a"] != 3 || m[`b{reason="X Y"}`] != 2.5 {
		t.Errorf("samples %v", m)
	}
}

func TestStatusKB(t *testing.T) {
	kb, err := StatusKB(os.Getpid(), "VmRSS")
	if err != nil || kb <= 0 {
		t.Errorf("VmRSS of this process = %d, %v", kb, err)
	}
	if _, err := StatusKB(os.Getpid(), "NoSuchField"); err == nil {
		t.Error("no error for a missing field")
	}
}
