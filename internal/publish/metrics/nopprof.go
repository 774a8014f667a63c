//go:build !pprof

package metrics

import "net/http"

// Profiler says whether this binary can serve Go profiles (see pprof.go).
const Profiler = false

func servePprof(*http.ServeMux) {}
