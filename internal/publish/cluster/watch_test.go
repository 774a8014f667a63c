package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/logging/logtest"
	"k8s.io/client-go/rest"
)

func debugLogger(b *logtest.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// refusingServer answers list and watch of nodes with 403, as the API
// server does to credentials of another node, until allowed; then a list
// is empty and a watch stays open until the client leaves.
type refusingServer struct {
	mu       sync.Mutex
	refuse   bool
	attempts int // refused requests
	watching chan struct{}
}

func (s *refusingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	refuse := s.refuse
	if refuse {
		s.attempts++
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case refuse:
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,`+
			`"message":"nodes \"node-b\" is forbidden: User \"system:node:node-a\" cannot list resource \"nodes\""}`)
	case r.URL.Query().Get("watch") == "true":
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		s.watching <- struct{}{}
		<-r.Context().Done()
	default:
		fmt.Fprint(w, `{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[]}`)
	}
}

// A list or watch refused with 403 is retried with the backoff of refused
// writes (to 5 minutes), not every 30 s, and logged at warn once per
// episode and at info when it ends. The backoff runs on a virtual clock:
// each episode lasts an hour of retries.
func TestWatchRefusedBacksOffAndWarnsOncePerEpisode(t *testing.T) {
	srv := &refusingServer{refuse: true, watching: make(chan struct{})}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	a, err := newRESTAPI(&rest.Config{Host: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	var logs logtest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	const episode = time.Hour
	var mu sync.Mutex
	var virtual time.Duration // slept in this episode
	var perEpisode []int
	nw := &nodeWatch{api: a, node: "node-b", out: newObsSlot(), log: debugLogger(&logs),
		sleep: func(ctx context.Context, d time.Duration) bool {
			mu.Lock()
			defer mu.Unlock()
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if srv.refuse {
				virtual += d
				if virtual >= episode {
					perEpisode = append(perEpisode, srv.attempts)
					srv.refuse, srv.attempts, virtual = false, 0, 0
				}
			}
			return ctx.Err() == nil
		}}
	done := make(chan struct{})
	go func() {
		nw.run(ctx)
		close(done)
	}()

	// Episode 1 ends with a list, then the watch opens; the server ends
	// it and refuses again: episode 2 ends with a watch.
	<-srv.watching
	srv.mu.Lock()
	srv.refuse = true
	srv.mu.Unlock()
	hs.CloseClientConnections()
	<-srv.watching
	// The recovery is logged once the watch is open.
	for deadline := time.Now().Add(10 * time.Second); len(logs.Lines("lets us read our own Node again")) < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	// The most attempts an hour allows when each wait is at least 0.8 of
	// backoff(n, refusedBackoff): 0.5 s doubling to 5 min.
	most, spent := 1, time.Duration(0)
	for n := 1; ; n++ {
		spent += time.Duration(0.8 * float64(min(500*time.Millisecond<<(n-1), refusedBackoff)))
		if spent >= episode {
			break
		}
		most++
	}
	if len(perEpisode) != 2 {
		t.Fatalf("%d episodes seen, want 2", len(perEpisode))
	}
	for i, n := range perEpisode {
		t.Logf("episode %d: %d refused requests in an hour (at most %d)", i+1, n, most)
		if n > most {
			t.Errorf("episode %d: %d refused list/watch requests in an hour, want at most %d", i+1, n, most)
		}
	}
	warns := logs.Lines("level=WARN")
	if len(warns) != 2 || !strings.Contains(warns[0], "what=list") || !strings.Contains(warns[1], "what=watch") || !strings.Contains(warns[0], "forbidden") {
		t.Errorf("want one warn line per episode (list, then watch), got:\n%s", strings.Join(warns, "\n"))
	}
	if infos := logs.Lines("lets us read our own Node again"); len(infos) != 2 || !strings.Contains(infos[0], "level=INFO") {
		t.Errorf("want one info line per recovery, got:\n%s", strings.Join(infos, "\n"))
	}
}
