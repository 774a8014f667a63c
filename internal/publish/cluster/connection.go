package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/nodehealthd/nodehealthd/internal/host"
)

// dialFunc makes the client the worker publishes with and names the node:
// it sets w.api and w.node (and w.creds when there are credentials) and
// reports whether it did. The daemon's is dialKubeconfig; unit tests give
// a fake API server.
type dialFunc func(ctx context.Context, w *worker) bool

// connect makes a client and starts following the Node.
func (w *worker) connect(ctx context.Context, now time.Time) {
	w.nextDiscover = now.Add(discoverDelay(w.discoverMisses, w.cfg.DiscoverInterval))
	w.discoverMisses++
	if !w.p.dial(ctx, w) {
		return
	}
	w.noKubeconfig, w.discoverMisses = false, 0
	w.certStamp = certStamp(w.creds)
	w.nextFiles = now.Add(w.cfg.FileCheckInterval)
	w.written, w.lastNode, w.uid, w.absent = nil, nil, "", false
	w.retryAt, w.failures, w.eventRetryAt, w.eventFailures = now, 0, now, 0
	w.startWatch(ctx)
	if w.cfg.OnConnect != nil && w.creds != nil {
		cctx, cancel := context.WithCancel(ctx)
		w.stopConn = cancel
		w.cfg.OnConnect(cctx, rest.CopyConfig(w.creds.config), w.node)
	}
}

// dialKubeconfig finds and loads the kubelet's kubeconfig.
func dialKubeconfig(ctx context.Context, w *worker) bool {
	path, err := findKubeconfig(w.cfg.Root, w.cfg.Kubeconfig)
	if err != nil {
		if !w.noKubeconfig {
			w.noKubeconfig = true
			where := w.cfg.Kubeconfig
			if where == "" {
				var ps []string
				for _, p := range KubeconfigPaths {
					ps = append(ps, host.Path(w.cfg.Root, p))
				}
				where = strings.Join(ps, ", ")
			}
			msg := "no kubelet kubeconfig yet: local mode; publishing starts when it appears"
			if !errors.Is(err, fs.ErrNotExist) {
				msg = "kubelet kubeconfig unreadable: local mode until it can be read"
			}
			w.log.Info(msg, "looked_in", where, "err", err, "check_every", fmt.Sprintf("%v, growing to %v", firstDiscover, w.cfg.DiscoverInterval))
			w.lastErr = "no kubeconfig: " + err.Error()
		}
		return false
	}
	creds, err := loadCredentials(ctx, w.cfg, path, w.log)
	var client restAPI
	if err == nil {
		client, err = newRESTAPI(creds.config)
	}
	if err != nil {
		w.lastErr = "kubeconfig: " + err.Error()
		w.logOnce("kubeconfig", 10*time.Minute, slog.LevelError, "cannot use the kubelet kubeconfig; retrying", "kubeconfig", path, "err", err, "retry_every", w.cfg.DiscoverInterval)
		return false
	}
	node, source := resolveNodeName(w.cfg.Root, w.cfg.NodeName, creds.certNode)
	w.log.Info("publishing to the cluster", "node", node, "node_name_from", source, "kubeconfig", path, "credentials", creds.kind)
	if creds.certNode != "" && creds.certNode != node {
		w.log.Error("the client certificate is node "+creds.certNode+"'s: the API server will refuse writes to node "+node,
			"node", node, "certificate_node", creds.certNode)
	}
	w.creds, w.api, w.node = creds, client, node
	return true
}

func (w *worker) startWatch(ctx context.Context) {
	if w.cfg.NoWatch {
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	w.stopWatch = cancel
	w.obs = newObsSlot()
	go watchNode(wctx, w.api, w.node, w.obs, w.log)
}

// disconnect drops the client, e.g. to reload a changed kubeconfig.
func (w *worker) disconnect() {
	if w.stopWatch != nil {
		w.stopWatch()
		w.stopWatch = nil
	}
	if w.stopConn != nil {
		w.stopConn()
		w.stopConn = nil
	}
	w.obs, w.api, w.creds = nil, nil, nil
	w.nextDiscover = time.Time{}
}

// firstDiscover is the gap between the first looks for a missing
// kubeconfig; it doubles up to Config.DiscoverInterval.
const firstDiscover = 10 * time.Second

// discoverDelay is the wait after misses looks that found nothing.
func discoverDelay(misses int, max time.Duration) time.Duration {
	d := firstDiscover
	for range misses {
		if d >= max {
			break
		}
		d *= 2
	}
	return min(d, max)
}

func certStamp(c *credentials) fileStamp {
	if c == nil || c.certFile == "" {
		return fileStamp{}
	}
	s := stampOf(c.certFile)
	if k := stampOf(c.keyFile); c.keyFile != c.certFile {
		s.size += k.size
		if k.modTime.After(s.modTime) {
			s.modTime = k.modTime
		}
		s.ino ^= k.ino << 1
	}
	return s
}

// checkFiles notices a rewritten kubeconfig and a rotated certificate.
// client-go reads certificate files at each TLS handshake, but an
// established HTTP/2 connection (the watch keeps one open) never
// handshakes again, and client-go only looks for rotation every 5 minutes.
// A new client gets new connections at once; the old ones are closed.
func (w *worker) checkFiles(ctx context.Context, now time.Time) {
	w.nextFiles = now.Add(w.cfg.FileCheckInterval)
	if w.creds == nil {
		return
	}
	var why string
	if st := stampOf(w.creds.path); st.exists && st != w.creds.stamp {
		why = "kubeconfig changed; reloading it"
	} else if st := certStamp(w.creds); st.exists && st != w.certStamp {
		why = "client certificate changed on disk; reconnecting with it"
	}
	if why == "" {
		return
	}
	w.log.Info(why, "kubeconfig", w.creds.path, "cert", w.creds.certFile)
	old := w.creds.dialer
	w.disconnect()
	w.connect(ctx, now)
	old.CloseAll()
}
