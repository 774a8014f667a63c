package network

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// netFakeUnits is a netUnits with settable state.
type netFakeUnits struct {
	st  map[string]netUnitState
	err error
}

func (f *netFakeUnits) UnitState(_ context.Context, unit string) (netUnitState, error) {
	if f.err != nil {
		return netUnitState{}, f.err
	}
	return f.st[unit], nil
}

// netFakeSandboxes answers sandbox IPs from a map; missing sandboxes fail.
type netFakeSandboxes struct {
	ips   map[string][]string
	calls int
}

func (f *netFakeSandboxes) SandboxIPs(_ context.Context, id string) ([]string, error) {
	f.calls++
	ips, ok := f.ips[id]
	if !ok {
		return nil, errors.New("NotFound: sandbox " + id)
	}
	return ips, nil
}

func netProc(t *testing.T, root string, pid int, comm string) {
	t.Helper()
	probetest.At(t, root).Write(filepath.Join("proc", strconv.Itoa(pid), "comm"), comm+"\n")
}

// netIPAMDHost is a node with the VPC CNI and ipamd running.
func netIPAMDHost(t *testing.T) string {
	root := t.TempDir()
	netInstallVPCCNI(t, root, "aws-node-x7k2p")
	netProc(t, root, 1, "systemd")
	netProc(t, root, 812, "kubelet")
	netProc(t, root, 4242, "aws-k8s-agent")
	return root
}

func netIPAMDRig(t *testing.T, root string, tags ...string) (*probetest.Rig, *probetest.Clock, *netFakeSandboxes) {
	t.Helper()
	env, clk, _ := probetest.At(t, root).Fake(tags...)
	p := probetest.Build(t, env, "ipamd", "").(*netIPAMD)
	sb := &netFakeSandboxes{ips: map[string][]string{}}
	p.sandboxes = sb
	return probetest.NewRig(t, p, env), clk, sb
}

func TestNetIPAMDNotRunning(t *testing.T) {
	root := netIPAMDHost(t)
	rig, clk, _ := netIPAMDRig(t, root)
	step := func() []probe.Result { clk.Add(5 * time.Minute); return rig.Check() }
	rig.Check() // first sighting of the aws-node pod: startup grace
	if res := step(); len(res) != 0 {
		t.Fatalf("running ipamd: %v", probetest.Reasons(res))
	}
	if err := os.RemoveAll(filepath.Join(root, "proc/4242")); err != nil {
		t.Fatal(err)
	}
	if res := step(); len(res) != 0 {
		t.Fatalf("one not-running observation reported: %v", probetest.Reasons(res))
	}
	res := step()
	r := probetest.Find(res, "IPAMDNotRunning", "")
	if r == nil || r.Severity != "Fatal" || r.Message != "The AWS VPC CNI was detected on this node but IPAMD was not found running" {
		t.Fatalf("want IPAMDNotRunning, got %+v", res)
	}
	if res := step(); probetest.Find(res, "IPAMDNotRunning", "") == nil {
		t.Fatal("ipamd still down must keep reporting")
	}
	rig.Recovers("IPAMDNotRunning", "", func() { netProc(t, root, 5151, "aws-k8s-agent") }, func() { clk.Add(5 * time.Minute) })
}

func TestNetIPAMDTimerResetsWhenRunning(t *testing.T) {
	// down, up, down: NMA kept the first down time and reported the second
	// blip (B10 quirk 8); two blips with ipamd running between are not an
	// outage.
	root := netIPAMDHost(t)
	rig, clk, _ := netIPAMDRig(t, root)
	rig.Check()
	for i, running := range []bool{false, true, false, true, false} {
		clk.Add(5 * time.Minute)
		if running {
			netProc(t, root, 4242, "aws-k8s-agent")
		} else if err := os.RemoveAll(filepath.Join(root, "proc/4242")); err != nil {
			t.Fatal(err)
		}
		if res := rig.Check(); len(res) != 0 {
			t.Fatalf("step %d: %v", i, probetest.Reasons(res))
		}
	}
}

func TestNetIPAMDWindowAndPodChange(t *testing.T) {
	root := netIPAMDHost(t)
	if err := os.RemoveAll(filepath.Join(root, "proc/4242")); err != nil {
		t.Fatal(err)
	}
	rig, clk, _ := netIPAMDRig(t, root)
	rig.Check() // pod first seen
	clk.Add(5 * time.Minute)
	rig.Check() // first down observation
	clk.Add(20 * time.Minute)
	// Too long since the last observation (checks were stalled) to count
	// as one outage: start over.
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("observations 20 minutes apart: %v", probetest.Reasons(res))
	}
	// A new aws-node pod restarts ipamd: skip a cycle and start over.
	if err := os.RemoveAll(filepath.Join(root, "var/log/pods")); err != nil {
		t.Fatal(err)
	}
	netInstallVPCCNI(t, root, "aws-node-b9q4z")
	clk.Add(5 * time.Minute)
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("new aws-node pod: %v", probetest.Reasons(res))
	}
	clk.Add(5 * time.Minute)
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("first observation after the pod change: %v", probetest.Reasons(res))
	}
	clk.Add(5 * time.Minute)
	if res := rig.Check(); probetest.Find(res, "IPAMDNotRunning", "") == nil {
		t.Fatalf("second observation: %v", probetest.Reasons(res))
	}
}

func TestNetIPAMDWithoutVPCCNI(t *testing.T) {
	// Calico or Cilium nodes: no aws-node pod, no ipamd, nothing to say.
	root := t.TempDir()
	probetest.At(t, root).Mkdir("var/log/pods/kube-system_cilium-7fdp2_9a8b/cilium-agent")
	netProc(t, root, 1, "systemd")
	rig, clk, _ := netIPAMDRig(t, root)
	for range 4 {
		if res := rig.Check(); len(res) != 0 {
			t.Fatalf("no VPC CNI: %v", probetest.Reasons(res))
		}
		clk.Add(5 * time.Minute)
	}
}

func TestNetIPAMDAutoMode(t *testing.T) {
	env, clk, _ := probetest.At(t, t.TempDir()).Fake("eks-auto")
	p := probetest.Build(t, env, "ipamd", "inconsistentState: false").(*netIPAMD)
	units := &netFakeUnits{st: map[string]netUnitState{"ipamd.service": {ActiveState: "failed", SubState: "failed", Result: "exit-code"}}}
	p.units = units
	if p.sandboxes != nil {
		t.Fatal("inconsistentState: false left the CRI check on")
	}
	rig := probetest.NewRig(t, p, env)
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("first: %v", probetest.Reasons(res))
	}
	clk.Add(5 * time.Minute)
	if res := rig.Check(); probetest.Find(res, "IPAMDNotRunning", "") == nil {
		t.Fatalf("auto mode, ipamd.service failed twice: %v", probetest.Reasons(res))
	}
	rig.Recovers("IPAMDNotRunning", "", func() {
		units.st["ipamd.service"] = netUnitState{ActiveState: "active", SubState: "running"}
	}, func() { clk.Add(5 * time.Minute) })
	units.err = errors.New("bus down")
	if _, err := p.Check(t.Context(), env); err == nil {
		t.Fatal("unreadable unit state must fail the check")
	}
}

func TestNetIPAMDInconsistentState(t *testing.T) {
	root := netIPAMDHost(t)
	netCheckpoint(t, root, "10.0.1.5", "10.0.1.6", "10.0.1.7")
	rig, clk, sb := netIPAMDRig(t, root)
	sb.ips["sandboxa"] = []string{"10.0.1.5"}
	sb.ips["sandboxb"] = []string{"10.0.1.99"} // the runtime disagrees
	// sandboxc is unknown to the runtime (being torn down): skipped.
	rig.Check()
	clk.Add(5 * time.Minute)
	res := rig.Check()
	r := probetest.Find(res, "IPAMDInconsistentState", "sandboxb")
	if r == nil || len(res) != 1 || r.Severity != "Warning" {
		t.Fatalf("want IPAMDInconsistentState for pod-b, got %v", probetest.Reasons(res))
	}
	if !strings.HasPrefix(r.Message, "Internal IPAMD state has conflicting IP addresses for pod default/pod-b") || !strings.Contains(r.Message, "10.0.1.99") {
		t.Fatalf("message: %q", r.Message)
	}
	// Answers are cached: a second check asks only for what failed.
	calls := sb.calls
	clk.Add(5 * time.Minute)
	rig.Check()
	if sb.calls-calls != 1 {
		t.Fatalf("cached sandboxes asked again: %d calls", sb.calls-calls)
	}
	// Recovery: ipamd's checkpoint catches up (pod-b gone).
	rig.Recovers("IPAMDInconsistentState", "sandboxb", func() {
		netCheckpoint(t, root, "10.0.1.5")
	}, func() { clk.Add(5 * time.Minute) })
}

// netFakeCRI is a CRI runtime service that knows a few sandboxes.
type netFakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	ips map[string][]string
}

func (f *netFakeCRI) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	ips, ok := f.ips[req.GetPodSandboxId()]
	if !ok {
		return nil, errors.New("not found")
	}
	st := &runtimeapi.PodSandboxStatus{Id: req.GetPodSandboxId(), Network: &runtimeapi.PodSandboxNetworkStatus{}}
	if len(ips) > 0 {
		st.Network.Ip = ips[0]
		for _, ip := range ips[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: st}, nil
}

// TestNetIPAMDInconsistentStateCRI runs the real CRI client against a CRI
// server on a unix socket under the fixture root, where the daemon looks
// for containerd's.
func TestNetIPAMDInconsistentStateCRI(t *testing.T) {
	root, err := os.MkdirTemp("", "netcri") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	netInstallVPCCNI(t, root, "aws-node-x7k2p")
	netProc(t, root, 4242, "aws-k8s-agent")
	netCheckpoint(t, root, "10.0.1.5", "2600:1f14::6", "2600:1f14::8")
	probetest.At(t, root).Mkdir("run/containerd")
	ln, err := net.Listen("unix", filepath.Join(root, "run/containerd/containerd.sock"))
	if err != nil {
		t.Skipf("unix socket: %v", err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, &netFakeCRI{ips: map[string][]string{
		"sandboxa": {"10.0.1.5"},
		"sandboxb": {"10.0.3.3", "2600:1f14::7"},     // dual-stack, neither matches
		"sandboxc": {"10.0.3.4", "2600:1f14:0:0::8"}, // matches its additional IP
	}})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	rig, clk, _ := probetest.At(t, root).Rig("ipamd", "")
	rig.Check()
	clk.Add(5 * time.Minute)
	res := rig.Check()
	if r := probetest.Find(res, "IPAMDInconsistentState", "sandboxb"); r == nil || len(res) != 1 {
		t.Fatalf("over CRI: %v", probetest.Reasons(res))
	}
}
