package nvidia

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/rules"
)

// Names of the kmsg XID rules in the catalogue and of the set they test.
const (
	xidErrorRule   = "NvidiaXIDError"
	xidWarningRule = "NvidiaXIDWarning"
	fatalXIDSet    = "nvidiaFatalXIDs"
)

// xidTemplate is how one of the two kmsg XID rules builds its finding.
type xidTemplate struct {
	Condition string
	Reason    string // with ${xid}
	Severity  finding.Severity
	Message   string // with ${xid}
	Key       string // with ${pci} and ${xid}
	Recovery  finding.Recovery
}

// XIDPolicy turns an XID into the finding the kmsg rule would produce for
// the same XID on the same GPU: same reason, severity, key and message, so
// that the pipeline merges the two sightings into one finding (a Fatal one
// by identity, a Warning one by identity within 30 s across sources).
type XIDPolicy struct {
	// Fatal is the set that selects the Error rule over the Warning rule.
	Fatal map[uint64]bool
	// Overrides are config.yaml's per-reason overrides, which the rule
	// engine applies to template reasons such as NvidiaXID79Error.
	Overrides map[string]rules.Override
	Error     xidTemplate
	Warning   xidTemplate
}

// defaultTemplates mirror internal/rules/catalogue/accelerated.yaml; they
// are used only when the rules cannot be read, and a test checks they
// still agree with the catalogue.
var defaultTemplates = [2]xidTemplate{
	{Condition: finding.AcceleratedHardwareReady, Reason: ReasonXIDErrorTemplate, Severity: finding.Fatal,
		Message: "detected XID-${xid} on the instance, review kernel logs for additional information.", Key: "${pci}/${xid}"},
	{Condition: finding.AcceleratedHardwareReady, Reason: ReasonXIDWarningTemplate, Severity: finding.Warning,
		Message: "detected unknown XID-${xid} on the instance, review kernel logs for additional information.", Key: "${pci}/${xid}"},
}

// LoadXIDPolicy builds the policy from the built-in catalogue, the operator
// rules in rulesDir and the config, resolved the way the daemon resolves
// them for the kmsg rules (operator rules and sets replace built-in ones of
// the same name; config sets replace both). An error still returns a
// usable policy (the built-in one with the config applied).
func LoadXIDPolicy(cfg *config.Config, rulesDir string) (XIDPolicy, error) {
	if cfg == nil {
		cfg = &config.Config{}
	}
	f, err := rules.Catalogue()
	if err != nil {
		return policyFrom(nil, cfg), fmt.Errorf("built-in catalogue: %w", err)
	}
	op, oerr := rules.LoadDir(rulesDir)
	if oerr == nil {
		f = rules.Merge(f, op)
	}
	p := policyFrom(f, cfg)
	if oerr != nil {
		return p, fmt.Errorf("operator rules (using the built-in XID rules): %w", oerr)
	}
	return p, nil
}

func policyFrom(f *rules.File, cfg *config.Config) XIDPolicy {
	if cfg == nil {
		cfg = &config.Config{}
	}
	p := XIDPolicy{Error: defaultTemplates[0], Warning: defaultTemplates[1], Overrides: cfg.Reasons}
	setName := fatalXIDSet
	var sets map[string][]string
	if f != nil {
		sets = f.Sets
		for _, r := range f.Rules {
			switch r.EffectiveName() {
			case xidErrorRule:
				p.Error = templateFrom(r, p.Error)
				if r.CaptureIn != nil {
					setName = r.CaptureIn.Set
				}
			case xidWarningRule:
				p.Warning = templateFrom(r, p.Warning)
			}
		}
	}
	vals, ok := cfg.Sets[setName]
	if !ok {
		vals = sets[setName]
	}
	p.Fatal = map[uint64]bool{}
	for _, v := range vals {
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			p.Fatal[n] = true
		}
	}
	return p
}

// templateFrom takes a rule's templates where they only use the captures
// NVML can supply (pci and xid); anything else keeps the default.
func templateFrom(r rules.Rule, def xidTemplate) xidTemplate {
	t := def
	if r.Condition != "" {
		t.Condition = r.Condition
	}
	if sev, err := finding.ParseSeverity(r.Severity); err == nil {
		t.Severity = sev
	}
	for _, s := range []struct {
		dst *string
		src string
	}{{&t.Reason, r.Reason}, {&t.Message, r.Message}, {&t.Key, r.Key}} {
		if s.src != "" && expandable(s.src) {
			*s.dst = s.src
		}
	}
	if r.Recovery != nil {
		t.Recovery = finding.Recovery{ExpireAfter: time.Duration(r.Recovery.ExpireAfter), KeepAcrossReboot: r.Recovery.KeepAcrossReboot}
	}
	return t
}

func expandable(s string) bool {
	rest := strings.NewReplacer("${xid}", "", "${pci}", "").Replace(s)
	return !strings.Contains(rest, "$")
}

func expand(s string, xid uint64, pci string) string {
	return strings.NewReplacer("${xid}", strconv.FormatUint(xid, 10), "${pci}", pci).Replace(s)
}

// Finding returns the finding for xid on the GPU whose kmsg address is pci
// (see PCIKey). ok is false when config.yaml disables the reason.
func (p XIDPolicy) Finding(xid uint64, pci string, now time.Time) (f finding.Finding, ok bool) {
	t := p.Warning
	if p.Fatal[xid] {
		t = p.Error
	}
	reason := expand(t.Reason, xid, pci)
	sev, rec := t.Severity, t.Recovery
	if ov, has := p.Overrides[reason]; has {
		if ov.Enabled != nil && !*ov.Enabled {
			return finding.Finding{}, false
		}
		if ov.Severity != "" {
			sev = finding.Severity(ov.Severity)
		}
		if ov.Recovery != nil {
			rec = finding.Recovery{ExpireAfter: time.Duration(ov.Recovery.ExpireAfter), KeepAcrossReboot: ov.Recovery.KeepAcrossReboot}
		}
	}
	return finding.Finding{
		Condition: t.Condition, Reason: reason, Severity: sev,
		Message: expand(t.Message, xid, pci), Key: expand(t.Key, xid, pci),
		Rule: "nvml-xid", Source: Source, Detected: now, LastSeen: now, Count: 1, Recovery: rec,
	}, true
}

// PCIKey renders a GPU's PCI address the way the driver prints it in
// "NVRM: Xid (PCI:0000:3b:00): …" (domain:bus:device, lower-case hex, no
// function), which is what the kmsg rule captures as ${pci}.
func PCIKey(info nvml.PciInfo) string {
	return fmt.Sprintf("%04x:%02x:%02x", info.Domain, info.Bus, info.Device)
}
