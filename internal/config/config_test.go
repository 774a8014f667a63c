package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

func TestParseIsStrictAndNamesTheFile(t *testing.T) {
	for doc, want := range map[string]string{
		"reasons:\n  SoftLockup: {enabeld: false}\n":   "enabeld",
		"conditions:\n  DiskReady: {enabled: false}\n": "conditions.DiskReady",
		"sourcess: {}\n": "sourcess",
	} {
		_, err := Parse([]byte(doc), "/etc/nodehealthd/config.yaml")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "/etc/nodehealthd/config.yaml") {
			t.Errorf("%q: want an error naming %q and the file, got %v", doc, want, err)
		}
	}
}

func TestMissingFileIsDefaultsAndMonitored(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Monitored(false); !slices.Equal(got, []string{finding.KernelReady, finding.ContainerRuntimeReady, finding.NetworkingReady, finding.StorageReady}) {
		t.Fatalf("defaults without accelerators: %v", got)
	}
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte("conditions:\n  StorageReady: {enabled: false}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(p); err != nil {
		t.Fatal(err)
	}
	if got := c.Monitored(true); !slices.Equal(got, []string{finding.KernelReady, finding.ContainerRuntimeReady, finding.NetworkingReady, finding.AcceleratedHardwareReady}) {
		t.Fatalf("StorageReady disabled, accelerated node: %v", got)
	}
}
