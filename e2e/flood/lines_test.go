package flood

import (
	"fmt"
	"strings"
)

// npdRules are node-problem-detector's 14 kernel-monitor rules
// (config/kernel-monitor.json) in our rule format, reading the flood file
// instead of /dev/kmsg: "temporary" rules are Warnings, "permanent" ones
// Fatal. NPD reports the kernel message as the event message; the pattern
// is wrapped in a capture that becomes the message, so that the syslog
// prefix of a kern.log line (its timestamps) is not part of it. A leading
// ".*" of NPD's pattern is dropped, since our patterns are unanchored too.
var npdRules = []struct {
	name, condition, reason, severity, pattern string
}{
	{"NPDOOMKilling", "KernelReady", "OOMKilling", "Warning", `Killed process \d+ (.+) total-vm:\d+kB, anon-rss:\d+kB, file-rss:\d+kB.*`},
	{"NPDTaskHung", "KernelReady", "TaskHung", "Warning", `task [\S ]+:\w+ blocked for more than \w+ seconds\.`},
	{"NPDUnregisterNetDevice", "NetworkingReady", "UnregisterNetDevice", "Warning", `unregister_netdevice: waiting for \w+ to become free. Usage count = \d+`},
	{"NPDKernelOopsNull", "KernelReady", "KernelOops", "Warning", `BUG: unable to handle kernel NULL pointer dereference at .*`},
	{"NPDKernelOopsDivide", "KernelReady", "KernelOops", "Warning", `divide error: 0000 \[#\d+\] SMP`},
	{"NPDExt4Error", "StorageReady", "Ext4Error", "Warning", `EXT4-fs error .*`},
	{"NPDExt4Warning", "StorageReady", "Ext4Warning", "Warning", `EXT4-fs warning .*`},
	{"NPDIOError", "StorageReady", "IOError", "Warning", `Buffer I/O error .*`},
	{"NPDXfsHasShutdown", "StorageReady", "XfsHasShutdown", "Fatal", `XFS .* Shutting down filesystem.?`},
	{"NPDMemoryReadError", "KernelReady", "MemoryReadError", "Warning", `CE memory read error .*`},
	{"NPDCperCorrected", "KernelReady", "CperHardwareErrorCorrected", "Warning", `\[Hardware Error\]: event severity: corrected$`},
	{"NPDCperRecoverable", "KernelReady", "CperHardwareErrorRecoverable", "Warning", `\[Hardware Error\]: event severity: recoverable$`},
	{"NPDCperFatal", "KernelReady", "CperHardwareErrorFatal", "Fatal", `\[Hardware Error\]: event severity: fatal$`},
	{"NPDDockerHung", "ContainerRuntimeReady", "DockerHung", "Fatal", `task docker:\w+ blocked for more than \w+ seconds\.`},
}

// rulesYAML is npdRules as a rules file for path.
func rulesYAML(path string) string {
	var b strings.Builder
	b.WriteString("# node-problem-detector's kernel-monitor rules, for the flood benchmark.\nrules:\n")
	for _, r := range npdRules {
		fmt.Fprintf(&b, "  - name: %s\n    condition: %s\n    reason: %s\n    severity: %s\n    source: file\n    paths: [%s]\n    patterns: ['(?P<m>%s)']\n    message: '${m}'\n",
			r.name, r.condition, r.reason, r.severity, path, r.pattern)
	}
	return b.String()
}

// noise are kernel messages of a busy container node that match no rule
// (some share words with one: EXT4-fs, XFS, task, error).
var noise = []func(i int) string{
	func(i int) string { return fmt.Sprintf("eth0: renamed from veth%07x", i) },
	func(i int) string {
		return fmt.Sprintf("IPv6: ADDRCONF(NETDEV_CHANGE): eni%010x: link becomes ready", i*7919)
	},
	func(i int) string {
		return fmt.Sprintf(`audit: type=1400 audit(1732543021.%03d:%d): apparmor="STATUS" operation="profile_load" profile="unconfined" name="cri-containerd.apparmor.d" pid=%d comm="apparmor_parser"`, i%1000, i, 1000+i%30000)
	},
	func(i int) string {
		return fmt.Sprintf("xfs filesystem being remounted at /run/containerd/io.containerd.runtime.v2.task/k8s.io/%016x/rootfs supports timestamps until 2038 (0x7fffffff)", i)
	},
	func(i int) string { return fmt.Sprintf("device veth%07x entered promiscuous mode", i) },
	func(i int) string { return fmt.Sprintf("cni0: port %d(veth%07x) entered forwarding state", 1+i%64, i) },
	func(i int) string {
		return fmt.Sprintf("IPVS: rr: TCP 10.100.%d.%d:443 - no destination available", i%256, (i/256)%256)
	},
	func(i int) string {
		return fmt.Sprintf("TCP: request_sock_TCP: Possible SYN flooding on port %d. Sending cookies.  Check SNMP counters.", 30000+i%2000)
	},
	func(i int) string {
		return fmt.Sprintf("EXT4-fs (nvme%dn1): mounted filesystem with ordered data mode. Opts: (null). Quota mode: none.", 1+i%3)
	},
	func(int) string { return "overlayfs: upper fs does not support RENAME_WHITEOUT." },
	func(i int) string { return fmt.Sprintf("kauditd_printk_skb: %d callbacks suppressed", 1+i%40) },
	func(i int) string {
		return fmt.Sprintf("perf: interrupt took too long (%d > %d), lowering kernel.perf_event_max_sample_rate to %d", 2500+i%100, 2500, 79000)
	},
	func(i int) string {
		return fmt.Sprintf("XFS (nvme%dn1): Mounting V5 Filesystem %08x-4a1b-4c2d-8e3f-0123456789ab", 1+i%2, i)
	},
	func(i int) string { return fmt.Sprintf("ena 0000:00:%02x.0 eth%d: Link is up", 5+i%4, i%4) },
	func(i int) string {
		return fmt.Sprintf("nvme nvme%d: I/O %d QID %d timeout, completion polled", i%2, i%1024, 1+i%8)
	},
	func(i int) string {
		return fmt.Sprintf("task_work: pid %d comm containerd-shim exited with error code %d", 2000+i%30000, i%3)
	},
	func(i int) string {
		return fmt.Sprintf("systemd-journald[%d]: Data hash table of /var/log/journal/%032x/system.journal has a fill level at 75.0 (%d of %d items), suggesting rotation.", 400+i%10, i, 8000+i%100, 10000)
	},
	func(i int) string {
		return fmt.Sprintf("pci 0000:00:%02x.0: [1d0f:ec20] type 00 class 0x020000 reg 0x10: [mem 0xfebf%04x-0xfebf%04x]", i%32, i%0xffff, (i+0x1000)%0xffff)
	},
}

// match is a kernel message that NPD's rules match, and the reasons it
// raises (a hung docker task is both TaskHung and DockerHung).
type match struct {
	line    func(i int) string
	reasons []string
}

// varied are matching messages whose numbers change from line to line, as
// in a node that logs a problem now and then: each is a finding of its own.
var varied = []match{
	{func(i int) string {
		return fmt.Sprintf("Memory cgroup out of memory: Killed process %d (python3) total-vm:%dkB, anon-rss:%dkB, file-rss:%dkB, shmem-rss:0kB, UID:0 pgtables:%dkB oom_score_adj:%d", 3000+i, 900000+i, 800000+i, 1200+i%100, 1800+i%50, 900+i%100)
	}, []string{"OOMKilling"}},
	{func(i int) string {
		return fmt.Sprintf("INFO: task jbd2/nvme1n1-8:%d blocked for more than 120 seconds.", 300+i)
	}, []string{"TaskHung"}},
	{func(i int) string {
		return fmt.Sprintf("unregister_netdevice: waiting for eth%d to become free. Usage count = %d", i%8, 1+i%5)
	}, []string{"UnregisterNetDevice"}},
	{func(i int) string {
		return fmt.Sprintf("BUG: unable to handle kernel NULL pointer dereference at %016x", 8*(i%512))
	}, []string{"KernelOops"}},
	{func(i int) string { return fmt.Sprintf("divide error: 0000 [#%d] SMP PTI", 1+i) }, []string{"KernelOops"}},
	{func(i int) string {
		return fmt.Sprintf("EXT4-fs error (device nvme1n1): ext4_find_entry:1455: inode #%d: comm kubelet: reading directory lblock 0", 2+i)
	}, []string{"Ext4Error"}},
	{func(i int) string {
		return fmt.Sprintf("EXT4-fs warning (device nvme1n1): ext4_dx_add_entry:2351: Directory (ino: %d) index full, reach max htree level :2", 1000+i)
	}, []string{"Ext4Warning"}},
	{func(i int) string {
		return fmt.Sprintf("Buffer I/O error on dev nvme1n1, logical block %d, async page read", 4096+i)
	}, []string{"IOError"}},
	{func(i int) string {
		return fmt.Sprintf("XFS (nvme2n1): Corruption of in-memory data (0x%x) detected at xfs_trans_cancel+0x%x. Shutting down filesystem.", 8, 0x120+i%64)
	}, []string{"XfsHasShutdown"}},
	{func(i int) string {
		return fmt.Sprintf("CE memory read error on CPU_SrcID#%d_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x%x offset:0x0 grain:32 syndrome:0x0)", i%2, 0x1000+i)
	}, []string{"MemoryReadError"}},
	{func(i int) string { return fmt.Sprintf("{%d}[Hardware Error]: event severity: corrected", 1+i) }, []string{"CperHardwareErrorCorrected"}},
	{func(i int) string { return fmt.Sprintf("{%d}[Hardware Error]: event severity: recoverable", 1+i) }, []string{"CperHardwareErrorRecoverable"}},
	{func(i int) string { return fmt.Sprintf("{%d}[Hardware Error]: event severity: fatal", 1+i) }, []string{"CperHardwareErrorFatal"}},
	{func(i int) string {
		return fmt.Sprintf("INFO: task docker:%d blocked for more than 120 seconds.", 500+i)
	}, []string{"TaskHung", "DockerHung"}},
}

// repeated are messages a failing device or driver logs over and over,
// word for word: a flood of them is a flood of identical findings.
var repeated = []match{
	{func(int) string {
		return "EXT4-fs error (device nvme1n1): ext4_journal_check_start:83: comm kworker/u8:2: Detected aborted journal"
	}, []string{"Ext4Error"}},
	{func(int) string { return "Buffer I/O error on dev nvme1n1, logical block 0, lost sync page write" }, []string{"IOError"}},
	{func(int) string { return "unregister_netdevice: waiting for eth0 to become free. Usage count = 1" }, []string{"UnregisterNetDevice"}},
	{func(int) string { return "XFS (nvme2n1): Log I/O Error Detected. Shutting down filesystem" }, []string{"XfsHasShutdown"}},
}

// flood describes the lines of one case.
type flood struct {
	lines int
	// every is how often a line matches (1: every line).
	every int
	// matches are the matching lines, taken in turn.
	matches []match
}

// generate returns the kern.log lines of f, how often each reason is
// expected, and the matching messages by reason.
func (f flood) generate() ([]byte, map[string]int, map[string][]string) {
	want := map[string]int{}
	msgs := map[string][]string{}
	var b strings.Builder
	b.Grow(f.lines * 140)
	k := 0
	for i := 0; i < f.lines; i++ {
		var msg string
		if i%f.every == f.every-1 {
			m := f.matches[k%len(f.matches)]
			msg = m.line(k / len(f.matches))
			for _, r := range m.reasons {
				want[r]++
				if l := msgs[r]; len(l) == 0 || l[len(l)-1] != msg {
					msgs[r] = append(msgs[r], msg)
				}
			}
			k++
		} else {
			msg = noise[i%len(noise)](i)
		}
		us := 1234567890 + int64(i)*37
		fmt.Fprintf(&b, "Nov 25 10:%02d:%02d ip-10-0-1-23 kernel: [%6d.%06d] %s\n", (i/60000)%60, (i/1000)%60, us/1000000, us%1000000, msg)
	}
	return []byte(b.String()), want, msgs
}
