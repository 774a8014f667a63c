package diagmetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// docs/metrics.md and the dashboards know the series by these names.
func TestNames(t *testing.T) {
	for want, c := range map[string]prometheus.Collector{
		"nodehealthd_diagnostics_a_total": Counter("a_total", "h"),
		"nodehealthd_diagnostics_b_total": CounterVec("b_total", "h", "why"),
	} {
		ch := make(chan *prometheus.Desc, 1)
		c.Describe(ch)
		if d := (<-ch).String(); !strings.Contains(d, `fqName: "`+want+`"`) {
			t.Errorf("desc %s, want %s", d, want)
		}
	}
}
