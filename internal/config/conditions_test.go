package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/problems"
)

func TestCustomConditions(t *testing.T) {
	c, err := Parse([]byte(`conditions:
  StorageReady: {enabled: false}
  FrequentKubeletRestart: {healthyReason: NoFrequentKubeletRestart, healthyMessage: kubelet is stable}
  example.com/FooMountReady: {healthyReason: FooMounted}
  OldCheckReady: {enabled: false, healthyReason: OldCheckOK}
plugins: [plugins/ntp.json, /abs/foo.json]
`), "/etc/nodehealthd/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]condition.Declared{
		"FrequentKubeletRestart":    {HealthyReason: "NoFrequentKubeletRestart", HealthyMessage: "kubelet is stable"},
		"example.com/FooMountReady": {HealthyReason: "FooMounted", HealthyMessage: "Monitoring for example.com/FooMountReady is active"},
		"OldCheckReady":             {HealthyReason: "OldCheckOK", HealthyMessage: "Monitoring for OldCheckReady is active"},
	}
	if got := c.DeclaredConditions(); len(got) != len(want) || got["FrequentKubeletRestart"] != want["FrequentKubeletRestart"] ||
		got["example.com/FooMountReady"] != want["example.com/FooMountReady"] || got["OldCheckReady"] != want["OldCheckReady"] {
		t.Errorf("declared %v", got)
	}
	mon := c.Monitored(false)
	if !slices.Equal(mon, []string{finding.KernelReady, finding.ContainerRuntimeReady, finding.NetworkingReady, "FrequentKubeletRestart", "example.com/FooMountReady"}) {
		t.Errorf("monitored %v", mon)
	}
	if !c.IsDeclared("FrequentKubeletRestart") || !c.IsDeclared(finding.KernelReady) || c.IsDeclared("Ready") || c.IsDeclared("NotDeclared") {
		t.Error("IsDeclared")
	}
	if got := c.PluginFiles(); !slices.Equal(got, []string{"/etc/nodehealthd/plugins/ntp.json", "/abs/foo.json"}) {
		t.Errorf("plugin files %v", got)
	}
	if c.PluginUserName() != DefaultPluginUser {
		t.Errorf("plugin user %q", c.PluginUserName())
	}
	c, _ = Parse([]byte("pluginUser: \"\"\n"), "c.yaml")
	if c.PluginUserName() != "" {
		t.Errorf("pluginUser \"\" is %q", c.PluginUserName())
	}
}

func TestCustomConditionsRefused(t *testing.T) {
	_, err := Parse([]byte(`conditions:
  Ready: {healthyReason: KubeletReady}
  MemoryPressure: {enabled: false}
  KernelReady: {healthyReason: Mine}
  FooReady: {}
  bad type!: {healthyReason: X}
  BarReady: {healthyReason: "not a reason"}
`), filepath.Join("/etc", "config.yaml"))
	for _, want := range []string{
		"config.yaml:2: conditions.Ready: is the kubelet's condition type",
		"config.yaml:3: conditions.MemoryPressure: is the kubelet's condition type",
		"config.yaml:4: conditions.KernelReady: healthyReason and healthyMessage of a built-in type are fixed",
		"config.yaml:5: conditions.FooReady: not one of the five condition types; a custom type needs healthyReason",
		"config.yaml:6: conditions.bad type!: not a valid condition type",
		"config.yaml:7: conditions.BarReady: healthyReason: reason \"not a reason\"",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in:\n%v", want, err)
		}
	}
	if n := len(problems.List(err)); n != 6 {
		t.Errorf("%d problems, want 6:\n%v", n, err)
	}
}

func TestIsQualifiedName(t *testing.T) {
	for s, want := range map[string]bool{
		"FooReady": true, "example.com/FooReady": true, "a": true, "Foo_Mount-Ready.v2": true,
		"": false, "bad type!": false, "-Foo": false, "Foo-": false, "Example.com/Foo": false, "a/b/c": false,
		"/Foo": false, strings.Repeat("x", 64): false, strings.Repeat("x", 63): true,
	} {
		if got := isQualifiedName(s); got != want {
			t.Errorf("isQualifiedName(%q) = %v, want %v", s, got, want)
		}
	}
}
