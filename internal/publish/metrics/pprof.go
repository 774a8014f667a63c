//go:build pprof

package metrics

import (
	"net/http"
	"net/http/pprof"
)

// Profiler says whether this binary can serve Go profiles: only builds
// with the pprof tag (make build TAGS=pprof) link the profiler, which is
// 0.6 MiB of every node's binary that only developers use.
const Profiler = true

func servePprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
