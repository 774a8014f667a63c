package bundletest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"maps"
	"slices"
	"testing"
)

func TestReadKeysFilesBelowTheTopDirectory(t *testing.T) {
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	for name, data := range map[string]string{"top/manifest.json": "{}", "top/system/uname.txt": "Linux"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	files := Read(t, &b)
	if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, []string{"manifest.json", "system/uname.txt"}) || string(files["system/uname.txt"]) != "Linux" {
		t.Errorf("files %q", files)
	}
}
