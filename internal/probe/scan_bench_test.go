package probe

import (
	"context"
	"testing"
)

// BenchmarkScanProcesses is the process table scan of the zombies, pid-max
// and (with environ) large-environment probes, on the host running it.
func BenchmarkScanProcesses(b *testing.B) {
	for _, environ := range []bool{false, true} {
		name := "stat"
		if environ {
			name = "stat+environ"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ScanProcesses(context.Background(), "/proc", environ); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
