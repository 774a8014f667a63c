package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

// realisticMix is what a node's kmsg and journal mostly carry: lines that
// match nothing, with an occasional line that shares a word with a rule.
var realisticMix = []source.Record{
	{Kind: source.KindKmsg, Message: "eth0: renamed from veth8c1e2a4"},
	{Kind: source.KindKmsg, Message: "IPv6: ADDRCONF(NETDEV_CHANGE): eni3f9c2c1e8a1: link becomes ready"},
	{Kind: source.KindKmsg, Message: "audit: type=1400 audit(1732543021.123:412): apparmor=\"STATUS\" operation=\"profile_load\" name=\"cri-containerd.apparmor.d\""},
	{Kind: source.KindKmsg, Message: "xfs filesystem being remounted at /run/containerd/io.containerd.runtime.v2.task/k8s.io/4a1b/rootfs supports timestamps until 2038"},
	{Kind: source.KindKmsg, Message: "nvme nvme1: pci function 0000:00:1f.0"},
	{Kind: source.KindKmsg, Message: "device veth2a1b3c4 entered promiscuous mode"},
	{Kind: source.KindJournal, Identifier: "kubelet", Message: `I1125 10:00:01.123456    2345 kubelet.go:2345] "SyncLoop (PLEG): event for pod" pod="kube-system/aws-node-abcde" event={"ID":"1","Type":"ContainerStarted"}`},
	{Kind: source.KindJournal, Identifier: "kubelet", Message: `I1125 10:00:02.000001    2345 prober.go:107] "Probe succeeded" probeType="Readiness" pod="default/web-7d9f" containerName="web"`},
	{Kind: source.KindJournal, Identifier: "kubelet", Message: `E1125 10:00:03.000001    2345 pod_workers.go:1300] "Error syncing pod, skipping" err="failed to \"StartContainer\" for \"app\" with CrashLoopBackOff" pod="default/app-1"`},
	{Kind: source.KindJournal, Identifier: "containerd", Message: `time="2026-11-25T10:00:04Z" level=info msg="StartContainer for \"4a1b\" returns successfully"`},
	{Kind: source.KindJournal, Identifier: "systemd", Message: "Started Session 5 of User ec2-user."},
	{Kind: source.KindJournal, Identifier: "systemd", Message: "run-containerd-runc-k8s.io-4a1b-runc.xyz.mount: Deactivated successfully."},
	{Kind: source.KindFile, Path: "/var/log/aws-routed-eni/ipamd.log", Message: `{"level":"info","ts":"2026-11-25T10:00:05.000Z","caller":"ipamd/ipamd.go:1234","msg":"IP pool stats: Total IPs/Prefixes = 29/0, AssignedIPs/CooldownIPs: 3/0, c.maxIPsPerENI = 10"}`},
	{Kind: source.KindFile, Path: "/var/log/aws-routed-eni/ipamd.log", Message: `{"level":"debug","ts":"2026-11-25T10:00:06.000Z","caller":"datastore/data_store.go:680","msg":"AssignPodIPv4Address: Assign IP 10.0.1.23 to sandbox aws-cni/4a1b/eth0"}`},
}

func runMix(b *testing.B, set *Set, recs []source.Record) {
	e := NewEngine(set)
	var out []policy.Observation
	t := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := range recs {
		recs[i].Time = t
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		out = e.Process(&recs[i%len(recs)], out[:0])
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "µs/line")
}

// BenchmarkCatalogueRealisticMix is the per-line cost of the full built-in
// catalogue on lines that mostly match nothing (target ≤ 0.25 µs/line).
func BenchmarkCatalogueRealisticMix(b *testing.B) {
	runMix(b, catalogueSet(b), append([]source.Record(nil), realisticMix...))
}

// BenchmarkRulesScaling shows the cost stays nearly flat as rules are
// added, because lines are prefiltered by one automaton over all literals
// rather than one regexp per rule.
func BenchmarkRulesScaling(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			var doc strings.Builder
			doc.WriteString("rules:\n")
			for i := 0; i < n; i++ {
				fmt.Fprintf(&doc, "  - {name: R%d, condition: KernelReady, reason: R%d, severity: Warning, source: kmsg, patterns: ['synthetic failure code %d in (\\S+)']}\n", i, i, i)
				fmt.Fprintf(&doc, "  - {name: J%d, condition: KernelReady, reason: J%d, severity: Warning, source: journal, identifiers: [kubelet, containerd, systemd], patterns: ['synthetic failure code %d in (\\S+)']}\n", i, i, i)
			}
			f, err := Parse([]byte(doc.String()), "scale.yaml")
			if err != nil {
				b.Fatal(err)
			}
			set, err := Compile(f, Options{})
			if err != nil {
				b.Fatal(err)
			}
			runMix(b, set, append([]source.Record(nil), realisticMix...))
		})
	}
}

// A line that matches nothing costs no allocation, whatever the journal
// record's identifier and unit: the stream cache's key used to be built by
// concatenating them, which allocated once they were long.
func TestUnmatchedLinesDoNotAllocate(t *testing.T) {
	e := NewEngine(catalogueSet(t))
	recs := append([]source.Record(nil), realisticMix...)
	recs = append(recs, source.Record{Kind: source.KindJournal, Identifier: "kubelet", Unit: "run-containerd-runc-k8s.io-4a1b2c3d4e5f-runc.abcdef.scope",
		Message: "Started Session 5 of User ec2-user."})
	var out []policy.Observation
	for i := range recs {
		out = e.Process(&recs[i], out[:0]) // build the stream caches
	}
	for i := range recs {
		if len(e.Process(&recs[i], out[:0])) > 0 {
			continue // findings allocate, by design
		}
		if n := testing.AllocsPerRun(100, func() { out = e.Process(&recs[i], out[:0]) }); n != 0 {
			t.Errorf("record %d (%s %q): %v allocations per line", i, recs[i].Kind, recs[i].Identifier, n)
		}
	}
}
