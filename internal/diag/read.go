package diag

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/host"
)

// readFile reads a host file under the root, up to MaxBytes: the first
// ones, or with tail the last ones.
func (c *collector) readFile(root, p string, tail bool) (data []byte, truncated bool, skip string, err error) {
	if why := treat(p).exclude; why != "" {
		return nil, false, why, nil
	}
	full, err := resolve(root, p)
	if err != nil {
		return nil, false, "", err
	}
	fi, err := os.Stat(full)
	if err != nil {
		return nil, false, "", err
	}
	// A FIFO or device would block or never end.
	if !fi.Mode().IsRegular() {
		return nil, false, "not a regular file", nil
	}
	f, err := os.Open(full)
	if err != nil {
		return nil, false, "", err
	}
	defer f.Close()
	if over := fi.Size() - int64(c.opts.MaxBytes); tail && over > 0 {
		if _, err := f.Seek(over-1, io.SeekStart); err != nil {
			return nil, false, "", err
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(c.opts.MaxBytes)+1))
	if err != nil {
		return nil, false, "", err
	}
	if len(b) > c.opts.MaxBytes {
		if tail {
			return b[len(b)-c.opts.MaxBytes:], true, "", nil
		}
		return b[:c.opts.MaxBytes], true, "", nil
	}
	return b, false, "", nil
}

// maxDirFiles bounds a directory copy; config directories hold a handful.
const maxDirFiles = 500

// root is where an item's paths are resolved.
func (c *collector) root(it item) string {
	if it.local {
		return "/"
	}
	return c.opts.Root
}

func (c *collector) collectDir(it item) error {
	full, err := resolve(c.root(it), it.dir)
	if err == nil {
		_, err = os.Stat(full)
	}
	if errors.Is(err, fs.ErrNotExist) {
		c.record(Entry{Source: it.source(), Skipped: "not present on this host"})
		return nil
	}
	if err != nil {
		c.record(Entry{Source: it.source(), Error: err.Error()})
		return nil
	}
	n := 0
	return filepath.WalkDir(full, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(full, p)
		hostPath := path.Join(it.dir, filepath.ToSlash(rel))
		if err != nil {
			c.record(Entry{Source: hostPath, Error: err.Error()})
			return nil
		}
		if d.IsDir() || c.ctx.Err() != nil {
			return nil
		}
		if n++; n > maxDirFiles {
			if n == maxDirFiles+1 {
				c.record(Entry{Source: it.source(), Error: fmt.Sprintf("more than %d files; the rest left out", maxDirFiles)})
			}
			return filepath.SkipAll
		}
		e := Entry{Source: hostPath}
		if why := treat(hostPath).exclude; why != "" {
			e.Skipped = why
			c.record(e)
			return nil
		}
		// Symlinked files are read through their target; sockets, FIFOs
		// and devices are not read at all.
		if !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		b, trunc, skip, err := c.readFile(c.root(it), hostPath, false)
		switch {
		case skip != "":
			e.Skipped = skip
			c.record(e)
			return nil
		case err != nil:
			e.Error = err.Error()
			c.record(e)
			return nil
		}
		e.Truncated = trunc
		if !c.redactStructured(treat(hostPath).format, &b, &e) {
			c.record(e)
			return nil
		}
		return c.write(path.Join(it.out, filepath.ToSlash(rel)), b, &e)
	})
}

// resolve maps a host path to the file under root. Absolute symlinks are
// resolved inside root, as on the host (e.g. /etc/resolv.conf pointing to
// /run/systemd/resolve/stub-resolv.conf), instead of escaping to the
// system running the collector.
func resolve(root, p string) (string, error) {
	if root == "" || root == "/" {
		return p, nil
	}
	cur := p
	for range 16 {
		full := host.Path(root, cur)
		target, err := os.Readlink(full)
		if err != nil {
			// Not a symlink (or not there): the caller's stat tells.
			return full, nil
		}
		if filepath.IsAbs(target) {
			cur = target
		} else {
			cur = path.Join(path.Dir(cur), target)
		}
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", p)
}

func commandError(overall, ctx context.Context, err error, limit time.Duration) string {
	switch {
	case overall.Err() != nil:
		return "stopped: the collection time limit was reached: " + err.Error()
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("timed out (limit %s): %v", limit, err)
	case errors.Is(err, exec.ErrNotFound):
		return "command not found: " + err.Error()
	}
	return err.Error()
}

// BundleName is the bundle's top directory for a collection at now, which
// names the node and the time: bundles of many nodes end up side by side.
func BundleName(root string, now time.Time) string {
	return fmt.Sprintf("nodehealthd-diag-%s-%s", safeName(hostname(root)), now.UTC().Format("20060102T150405Z"))
}

func lastLine(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

func hostname(root string) string {
	if b, err := os.ReadFile(host.Path(root, "/proc/sys/kernel/hostname")); err == nil {
		if h := strings.TrimSpace(string(b)); h != "" {
			return h
		}
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "unknown"
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// ExecRunner returns the real Runner: it runs name, kills it when ctx
// ends, and keeps little more than maxBytes of its output while draining
// the rest, so that a chatty command neither blocks nor fills memory.
func ExecRunner(maxBytes int) Runner {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.WaitDelay = 2 * time.Second
		var out capped
		out.max = maxBytes
		cmd.Stdout = &out
		cmd.Stderr = &out
		err := cmd.Run()
		return out.buf.Bytes(), err
	}
}

// capped keeps one byte more than max, so that the collector can tell a
// cut output from one of exactly max bytes.
type capped struct {
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max + 1 - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
