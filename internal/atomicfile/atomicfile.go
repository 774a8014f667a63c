// Package atomicfile replaces a small file so that a crash or a power loss
// leaves either the old content or the new, never a torn or empty file.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with b, readable as perm. The data goes to a
// temporary file in the same directory, which is fsynced and renamed over
// path; the directory is fsynced last so that the rename itself survives
// a power loss. The temporary file is removed on any failure, so a full
// disk leaves no debris behind. The error, from package os, names the
// file and the step that failed.
func Write(path string, b []byte, perm os.FileMode) error {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// CreateTemp makes the file 0600 whatever the umask; perm is the
	// file's final mode.
	if err := os.Chmod(tmp.Name(), perm); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
