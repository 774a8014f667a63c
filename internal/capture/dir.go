package capture

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/atomicfile"
)

// Bundle files are named for the node, the time and the reason that
// triggered them, so that a directory of many nodes' bundles sorts and
// reads by itself.
const (
	bundlePrefix = "nodehealthd-diag-"
	bundleSuffix = ".tar.gz"
	// indexFile remembers when each reason was last captured, so that the
	// rate limit survives a restart and the bundles retention removed.
	indexFile = "captures.json"
)

// BundleFile is the file name of a bundle of node taken at t for reason.
func BundleFile(node, reason string, t time.Time) string {
	return bundlePrefix + safeName(node) + "-" + t.UTC().Format("20060102T150405Z") + "-" + safeName(reason) + bundleSuffix
}

func safeName(s string) string {
	if s == "" {
		return "unknown"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// bundle is one bundle file of the directory.
type bundle struct {
	name  string
	size  int64
	mtime time.Time
}

// bundles lists dir's bundles, oldest first. Files that are not bundles
// (the index, the console budget, an operator's notes) are not touched.
func bundles(dir string) ([]bundle, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []bundle
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, bundlePrefix) || !strings.HasSuffix(n, bundleSuffix) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, bundle{name: n, size: fi.Size(), mtime: fi.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].mtime.Equal(out[j].mtime) {
			return out[i].mtime.Before(out[j].mtime)
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// prune removes the oldest bundles of dir until at most keep remain and
// they take at most maxBytes together. The byte budget is a hard bound on
// the disk the bundles use: a single bundle larger than it is removed too
// (after its upload, which happens first), because a full /var stops the
// kubelet. It returns the bundles removed.
func prune(dir string, keep int, maxBytes int64) ([]string, error) {
	bs, err := bundles(dir)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, b := range bs {
		total += b.size
	}
	var removed []string
	var errs []error
	for len(bs) > 0 && (len(bs) > keep || total > maxBytes) {
		b := bs[0]
		bs = bs[1:]
		if err := os.Remove(filepath.Join(dir, b.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		total -= b.size
		removed = append(removed, b.name)
	}
	return removed, errors.Join(errs...)
}

// removePartial removes bundles a killed or crashed collection left
// half-written.
func removePartial(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), bundlePrefix) && strings.HasSuffix(e.Name(), ".partial") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// index is the rate limit's memory: when each reason was last captured.
type index struct {
	Last map[string]time.Time `json:"last"`
}

// loadIndex reads dir's index. A missing or unreadable one is empty: at
// worst a reason is captured once more than the limit allows.
func loadIndex(dir string) (index, error) {
	ix := index{Last: map[string]time.Time{}}
	b, err := os.ReadFile(filepath.Join(dir, indexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return ix, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &ix)
	}
	if err != nil {
		return index{Last: map[string]time.Time{}}, fmt.Errorf("capture index %s: %w", filepath.Join(dir, indexFile), err)
	}
	if ix.Last == nil {
		ix.Last = map[string]time.Time{}
	}
	return ix, nil
}

// allow reports whether reason may be captured at now, and if so records
// it; entries older than every are forgotten.
func (ix index) allow(reason string, now time.Time, every time.Duration) bool {
	for r, t := range ix.Last {
		if now.Sub(t) >= every || t.After(now.Add(every)) {
			delete(ix.Last, r)
		}
	}
	if _, recent := ix.Last[reason]; recent {
		return false
	}
	ix.Last[reason] = now
	return true
}

// save writes the index atomically.
func (ix index) save(dir string) error {
	b, err := json.Marshal(ix)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, indexFile), b, 0o600)
}
