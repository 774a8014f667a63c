package diag

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/hardware"
	"github.com/nodehealthd/nodehealthd/internal/host"
)

// journalUnits are the services whose journals go into the bundle: the
// daemon itself and what its conditions are usually about.
var journalUnits = []string{"nodehealthd", "nodehealthd-helper", "kubelet", "containerd", "nodeadm-config", "nodeadm-run"}

// plan lists what a bundle holds, in the order it is collected: the
// daemon's own view first, so that a short time limit still captures it.
func plan(o *Options) []item {
	var its []item
	add := func(it ...item) { its = append(its, it...) }
	file := func(out, p string) item { return item{out: out, file: p, optional: true} }
	logTail := func(out, p string) item { return item{out: out, file: p, optional: true, tail: true} }
	cmd := func(out string, argv ...string) item { return item{out: out, cmd: argv} }

	add(item{out: "nodehealthd/state.json", file: path.Join(o.StateDir, "state.json"), optional: true, local: o.DaemonPaths})
	for _, g := range o.Extra {
		add(item{out: g.Path, gen: g.Make, what: g.Path})
	}
	add(item{out: "nodehealthd/etc", dir: o.ConfigDir, local: o.DaemonPaths})
	if rd := rulesDir(o); rd != "" {
		add(item{out: "nodehealthd/rules.d", dir: rd, local: o.DaemonPaths})
	}

	journal := func(args ...string) []string {
		argv := []string{"journalctl", "--no-pager", "-o", "short-iso-precise", "-n", strconv.Itoa(o.JournalLines)}
		if o.Root != "/" {
			argv = append(argv, "--root", o.Root)
		}
		return append(argv, args...)
	}
	since := fmt.Sprintf("-%ds", int(o.Since.Seconds()))
	for _, u := range journalUnits {
		add(cmd("journal/"+u+".log", journal("-u", u, "--since", since)...))
	}
	// The kernel log of the previous boot explains a crash or a reboot
	// that dmesg of this boot no longer shows.
	add(cmd("journal/kernel-previous-boot.log", journal("-k", "-b", "-1")...))

	add(
		cmd("kernel/dmesg.txt", "dmesg", "-T"),
		cmd("kernel/uname.txt", "uname", "-a"),
		cmd("kernel/sysctl.txt", "sysctl", "-a"),
		file("kernel/cmdline", "/proc/cmdline"),
		file("kernel/modules", "/proc/modules"),
		file("system/os-release", "/etc/os-release"),
		file("system/uptime", "/proc/uptime"),
		file("system/loadavg", "/proc/loadavg"),
		file("system/meminfo", "/proc/meminfo"),
		file("system/pressure-cpu", "/proc/pressure/cpu"),
		file("system/pressure-memory", "/proc/pressure/memory"),
		file("system/pressure-io", "/proc/pressure/io"),
		cmd("system/units-failed.txt", "systemctl", "list-units", "--failed", "--no-pager"),
		cmd("system/units.txt", "systemctl", "list-units", "--all", "--no-pager"),
		cmd("system/ps.txt", "ps", "auxfww"),
		item{out: "system/cmdlines.txt", cmdlines: true},
		// The global environment: proxies.
		file("system/environment", "/etc/environment"),

		cmd("network/ip-addr.txt", "ip", "addr", "show"),
		cmd("network/ip-link-stats.txt", "ip", "-s", "link", "show"),
		cmd("network/ip-route.txt", "ip", "route", "show", "table", "all"),
		cmd("network/ip6-route.txt", "ip", "-6", "route", "show", "table", "all"),
		cmd("network/ip-rule.txt", "ip", "rule", "show"),
		cmd("network/ip6-rule.txt", "ip", "-6", "rule", "show"),
		cmd("network/iptables-save.txt", "iptables-save"),
		cmd("network/ip6tables-save.txt", "ip6tables-save"),
		cmd("network/nft-ruleset.txt", "nft", "list", "ruleset"),
		file("network/resolv.conf", "/etc/resolv.conf"),
		item{out: "network/cni-net.d", dir: "/etc/cni/net.d"},
		logTail("network/ipamd.log", "/var/log/aws-routed-eni/ipamd.log"),
		logTail("network/cni-plugin.log", "/var/log/aws-routed-eni/plugin.log"),

		file("storage/mounts", "/proc/mounts"),
		file("storage/fstab", "/etc/fstab"),
		cmd("storage/df-h.txt", "df", "-h"),
		cmd("storage/df-i.txt", "df", "-i"),
		cmd("storage/lsblk.txt", "lsblk", "-o", "NAME,KNAME,MAJ:MIN,SIZE,TYPE,FSTYPE,MOUNTPOINT,MODEL,SERIAL"),

		file("kubernetes/kubelet-config.json", "/etc/kubernetes/kubelet/config.json"),
		item{out: "kubernetes/kubelet-config.json.d", dir: "/etc/kubernetes/kubelet/config.json.d"},
		file("kubernetes/kubelet-environment", "/etc/eks/kubelet/environment"),
		cmd("kubernetes/kubelet-unit.txt", "systemctl", "cat", "kubelet"),
		// Credential files, redacted structurally (see treat): the
		// kubeconfigs of AL2023, its Outposts bootstrap file and
		// Bottlerocket; the image credential provider; registry auth in
		// Docker's format.
		file("kubernetes/kubeconfig", "/var/lib/kubelet/kubeconfig"),
		file("kubernetes/bootstrap-kubeconfig", "/var/lib/kubelet/bootstrap-kubeconfig"),
		file("kubernetes/kubelet-kubeconfig", "/etc/kubernetes/kubelet/kubeconfig"),
		file("kubernetes/image-credential-provider.json", "/etc/eks/image-credential-provider/config.json"),
		file("kubernetes/kubelet-docker-config.json", "/var/lib/kubelet/config.json"),
		file("containerd/docker-config.json", "/root/.docker/config.json"),
		file("containerd/config.toml", "/etc/containerd/config.toml"),
		item{out: "containerd/certs.d", dir: "/etc/containerd/certs.d"},
		item{out: "containerd/config-dump.toml", cmd: []string{"containerd", "config", "dump"}, format: tomlDoc},
		// Listed so that the manifest says it was left out on purpose.
		file("system/cloud-init-user-data", "/var/lib/cloud/instance/user-data.txt"),

		logTail("system/cloud-init.log", "/var/log/cloud-init.log"),
		logTail("system/cloud-init-output.log", "/var/log/cloud-init-output.log"),
		logTail("system/messages", "/var/log/messages"),
	)

	add(daemonEnvirons(o.Root)...)

	// Accelerator tools only where the hardware is, so that their absence
	// on other nodes is not reported as an error.
	switch hardware.Detect(o.Root) {
	case condition.Nvidia:
		add(cmd("gpu/nvidia-smi-q.txt", "nvidia-smi", "-q"))
	case condition.Neuron:
		add(cmd("neuron/neuron-ls.txt", "neuron-ls"))
	}
	return its
}

// rulesDir is the operator rules directory of the node's config when it
// lies outside the config directory (which is collected anyway).
func rulesDir(o *Options) string {
	rd := o.RulesDir
	if rd == "" {
		cfgPath := path.Join(o.ConfigDir, "config.yaml")
		if !o.DaemonPaths {
			cfgPath = host.Path(o.Root, cfgPath)
		}
		cfg, err := config.Load(cfgPath)
		if err != nil || cfg.RulesDir == "" {
			return ""
		}
		rd = cfg.RulesDir
	}
	rd = path.Clean(rd)
	if rd == o.ConfigDir || strings.HasPrefix(rd, path.Clean(o.ConfigDir)+"/") {
		return ""
	}
	return rd
}
