package probe

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// MinPeriod is the shortest period an operator may give a probe: a probe
// checked more often than this would spend the node's CPU on itself, and a
// sub-second value is almost always a unit typo (1ms for 1m).
const MinPeriod = time.Second

// Kind is a probe's identity: the name operators configure it by
// (probes.<name>) and its default period. A probe file declares it once,
// and its reasons and registration are derived from it.
type Kind struct {
	Name   string
	Period time.Duration
}

// Reason declares a reason the probe may report: the one place its
// condition, severity and texts are written. Probe files call it in package
// variable declarations and build their results from what it returns.
func (k Kind) Reason(r reason.Reason) *reason.Reason {
	r.Detector = "probe:" + k.Name
	r.Period = k.Period
	if r.Recovery == "" {
		r.Recovery = defaultRecovery(r.Severity)
	}
	return reason.Declare(r)
}

// defaultRecovery is what the framework does with a probe's finding, so
// that each probe states only what differs.
func defaultRecovery(sev finding.Severity) string {
	if sev == finding.Warning {
		return "Nothing to recover: a Warning is an event and never sets the condition. Each check that still finds the problem reports it again."
	}
	return fmt.Sprintf("Clears once the check has passed %d times in a row. A reboot also clears it; the probe raises it again if the problem remains.", DefaultPasses)
}

// Base is the half of a Probe the framework fills from the kind and the
// operator's section; a probe embeds it and adds Check and Needs.
type Base struct {
	name   string
	period time.Duration
}

func (b Base) Name() string          { return b.name }
func (b Base) Period() time.Duration { return b.period }

// NoSettings is the settings of a probe with no keys of its own.
type NoSettings struct{}

// Validator is implemented by settings that can be wrong in ways YAML types
// cannot express (a fraction above 1). Validate returns every problem
// (errors.Join), not only the first.
type Validator interface {
	Validate() error
}

// Register adds a probe: its kind, its settings with their defaults, and
// build, which makes the probe from valid settings or returns (nil, nil)
// when it does not apply to this host. Subsystem packages call it from
// init; internal/probe/all imports them all.
func Register[S any](k Kind, defaults S, build func(env *Env, b Base, s S) (Probe, error)) {
	if k.Period < MinPeriod {
		panic(fmt.Sprintf("probe %s: default period %v below %v", k.Name, k.Period, MinPeriod))
	}
	register(k, func(env *Env, section *yaml.Node) (Probe, error) {
		s, b, on, err := decodeSection(k, defaults, section)
		if err != nil || !on {
			return nil, err
		}
		return build(env, b, s)
	})
}

// section is what every probe's config section holds: the switch and the
// period, which the framework handles for all probes alike, and the probe's
// own keys inline.
type section[S any] struct {
	// Enabled defaults to true; false keeps the probe from being built.
	Enabled *bool `yaml:"enabled"`
	// Period is 0 or absent for the kind's default, else at least
	// MinPeriod.
	Period   time.Duration `yaml:"period"`
	Settings S             `yaml:",inline"`
}

// decodeSection reads a probe's section strictly over defaults. A section
// is checked whole even when it switches the probe off, so that a mistake
// is seen when it is written, not when the probe is switched on again; the
// error lists every problem found.
func decodeSection[S any](k Kind, defaults S, node *yaml.Node) (S, Base, bool, error) {
	sec := section[S]{Settings: defaults}
	var errs []error
	if node != nil {
		if err := decodeStrict(node, &sec); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case sec.Period == 0:
		sec.Period = k.Period
	case sec.Period < MinPeriod:
		errs = append(errs, fmt.Errorf("period %v: want at least %v (0 or absent: the default, %v)", sec.Period, MinPeriod, k.Period))
	}
	if v, ok := any(sec.Settings).(Validator); ok {
		if err := v.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	on := sec.Enabled == nil || *sec.Enabled
	return sec.Settings, Base{name: k.Name, period: sec.Period}, on, errors.Join(errs...)
}

// inType is the tail yaml gives a field error ("in type probe.section[…]"),
// which names Go types an operator has never seen.
var inType = regexp.MustCompile(` in type \S+$`)

// decodeStrict decodes node into v refusing unknown keys. yaml reports every
// unknown key and mistyped value of the section at once; each is returned
// as its own line, naming the keys the probe knows.
func decodeStrict(node *yaml.Node, v any) error {
	b, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	err = d.Decode(v)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var errs []error
	unknown := false
	for _, e := range te.Errors {
		unknown = unknown || strings.Contains(e, "not found")
		errs = append(errs, errors.New(inType.ReplaceAllString(e, "")))
	}
	if unknown {
		errs = append(errs, fmt.Errorf("known keys: %s", strings.Join(yamlKeys(reflect.TypeOf(v).Elem()), ", ")))
	}
	return errors.Join(errs...)
}

// yamlKeys lists the keys a struct type decodes, inline structs included.
func yamlKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
		case strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct:
			out = append(out, yamlKeys(f.Type)...)
		case name != "":
			out = append(out, name)
		case f.IsExported():
			out = append(out, strings.ToLower(f.Name))
		}
	}
	slices.Sort(out)
	return out
}

// Positive returns an error naming every setting of byKey, by its key, that
// is not above zero: a duration, or a count such as a threshold; settings'
// Validate methods use it.
func Positive[T ~int | ~int64 | ~uint32 | ~uint64](byKey map[string]T) error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		if byKey[k] <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: want more than 0 (leave it out for the default)", k, byKey[k]))
		}
	}
	return errors.Join(errs...)
}
