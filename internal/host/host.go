// Package host reads the few facts about the running boot that several parts
// of the daemon need (boot ID, boot time), always under a root prefix so that
// tests and the Bottlerocket host container can point it elsewhere.
package host

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Path joins p under root; root "" or "/" leaves p unchanged.
func Path(root, p string) string {
	if root == "" || root == "/" {
		return p
	}
	return filepath.Join(root, p)
}

// BootID returns the kernel's random boot ID for the running boot.
func BootID(root string) (string, error) {
	b, err := os.ReadFile(Path(root, "/proc/sys/kernel/random/boot_id"))
	if err != nil {
		return "", fmt.Errorf("read boot ID: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("read boot ID: %s is empty", Path(root, "/proc/sys/kernel/random/boot_id"))
	}
	return id, nil
}

// BootTime returns when the running boot started, from the btime line of
// /proc/stat (whole seconds, which is all the kernel gives).
func BootTime(root string) (time.Time, error) {
	b, err := os.ReadFile(Path(root, "/proc/stat"))
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("read boot time: bad btime %q: %w", v, err)
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("read boot time: no btime line in %s", Path(root, "/proc/stat"))
}
