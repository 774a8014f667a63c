package rules

import (
	"regexp"

	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// producers answers config validation's questions about a reason as
// findings carry it: the rules' and the detectors' reasons and reason
// templates, with their conditions and default severities.
type producers struct {
	static    map[string]policy.Produced
	templates []templateProducer
}

type templateProducer struct {
	match *regexp.Regexp
	policy.Produced
}

var _ policy.Producers = (*producers)(nil)

// declaredProducers holds the reasons the detectors declare.
func declaredProducers() *producers {
	p := &producers{static: map[string]policy.Produced{}}
	for _, r := range reason.All() {
		p.add(r.Name, policy.Produced{Condition: r.Condition, Severity: r.Severity})
	}
	return p
}

func (p *producers) add(name string, what policy.Produced) {
	if len(reason.Refs(name)) > 0 {
		p.templates = append(p.templates, templateProducer{match: reason.Matcher(name), Produced: what})
		return
	}
	if _, dup := p.static[name]; !dup {
		p.static[name] = what
	}
}

// Produced returns the first producer of reason: an exact name before a
// template, in the order added.
func (p *producers) Produced(name string) (policy.Produced, bool) {
	if what, ok := p.static[name]; ok {
		return what, true
	}
	for _, t := range p.templates {
		if t.match.MatchString(name) {
			return t.Produced, true
		}
	}
	return policy.Produced{}, false
}
