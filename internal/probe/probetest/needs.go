package probetest

import (
	"context"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// NeedsCase is a probe on a tree that shows its problem from the first
// check on.
type NeedsCase struct {
	Name string
	// Build returns the probe, its Env and what to do before each check
	// (nil: nothing).
	Build      func(t *testing.T) (probe.Probe, *probe.Env, func())
	WantChecks int
}

// CheckNeeds holds each probe to its declared Needs.Checks: it reports
// nothing before its Checks-th check and reports the problem then.
// nodehealthd --once checks a probe exactly that often, so a declaration
// that is too low hides the problem and one too high wastes time.
func CheckNeeds(t *testing.T, cases []NeedsCase) {
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			p, env, step := c.Build(t)
			if got := max(p.Needs().Checks, 1); got != c.WantChecks {
				t.Fatalf("%s declares Needs.Checks %d, want %d", p.Name(), got, c.WantChecks)
			}
			for i := 1; i <= c.WantChecks; i++ {
				if step != nil {
					step()
				}
				res, err := p.Check(context.Background(), env)
				if err != nil {
					t.Fatalf("check %d: %v", i, err)
				}
				if i < c.WantChecks && len(res) != 0 {
					t.Fatalf("check %d of %d already reports %v: Needs.Checks is too high", i, c.WantChecks, res)
				}
				if i == c.WantChecks && len(res) == 0 {
					t.Fatalf("nothing reported after %d checks: Needs.Checks is too low", i)
				}
			}
		})
	}
}
