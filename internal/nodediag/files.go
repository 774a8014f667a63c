package nodediag

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
)

// bundlePath is where a request's bundle is written: for destination
// "node" the reference agent's name, which operators fetch through the
// node proxy; otherwise a name of its own in the diagnostics directory
// (not a nodehealthd-diag-* bundle, so retention leaves it alone), removed
// once uploaded.
func bundlePath(dir, node, dest string) string {
	if dest == DestinationNode {
		return filepath.Join(dir, node+"-logs.tar.gz")
	}
	return filepath.Join(dir, "nodediagnostic-"+node+".tar.gz")
}

func mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		errorsTotal.WithLabelValues("dir").Inc()
		return err
	}
	return nil
}

func sectionList(sections []string) string {
	if len(sections) == 0 {
		return "all"
	}
	return strings.Join(sections, ",")
}

func removeBundle(log *slog.Logger, path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errorsTotal.WithLabelValues("remove").Inc()
		log.Warn("cannot remove an uploaded bundle", "path", path, "err", err)
	}
}

// scheduleRemoval removes the node's bundle for destination "node"
// RemoveAfter after it was written, by its modification time: one left by
// an earlier run of the daemon too. A newer bundle at the same path gets
// its own time.
func (s *Server) scheduleRemoval(cfg config.Diagnostics, node string) {
	path := bundlePath(cfg.Requests.Dir(), node, DestinationNode)
	fi, err := os.Stat(path)
	if err != nil || fi.ModTime().Equal(s.removalMod) {
		return
	}
	if s.removal != nil {
		s.removal.Stop()
	}
	mod := fi.ModTime()
	s.removalMod = mod
	s.removal = time.AfterFunc(max(0, s.opts.RemoveAfter-s.opts.Now().Sub(mod)), func() {
		fi, err := os.Stat(path)
		if err != nil || !fi.ModTime().Equal(mod) {
			return
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errorsTotal.WithLabelValues("remove").Inc()
			s.log.Warn("cannot remove the requested bundle left on the node", "path", path, "err", err)
			return
		}
		s.log.Info("removed the requested bundle left on the node", "path", path, "after", s.opts.RemoveAfter)
	})
}
