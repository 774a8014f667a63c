package nvidia

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// IMDS reads the instance type from the EC2 instance metadata service
// (IMDSv2: a session token by PUT, then the GET with it). The answer is
// cached for the life of the process: an instance's type cannot change
// without a stop, which restarts the daemon. Failures back off, so a node
// without IMDS (hybrid nodes, IMDS disabled) costs one quick request now
// and then, not one per poll.
type IMDS struct {
	// Endpoint is the service's base URL (default http://169.254.169.254).
	Endpoint string
	// Timeout bounds each request (default 2s).
	Timeout time.Duration
	Client  *http.Client

	mu       sync.Mutex
	cached   string
	nextTry  time.Time
	failures int
	lastErr  error
}

// NewIMDS returns a client for the real service.
func NewIMDS() *IMDS {
	// No proxy: IMDS is link-local, and HTTP(S)_PROXY set for the node
	// must not route metadata requests elsewhere.
	return &IMDS{Client: &http.Client{Transport: &http.Transport{Proxy: nil}}}
}

// InstanceType returns the instance type, from the cache when known.
func (m *IMDS) InstanceType(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cached != "" {
		return m.cached, nil
	}
	if time.Now().Before(m.nextTry) {
		return "", fmt.Errorf("instance metadata unavailable (retrying after %s): %w", m.nextTry.Format(time.RFC3339), m.lastErr)
	}
	t, err := m.fetch(ctx)
	if err != nil {
		m.failures++
		m.lastErr = err
		m.nextTry = time.Now().Add(min(time.Minute<<min(m.failures-1, 6), time.Hour))
		return "", err
	}
	m.cached, m.failures = t, 0
	return t, nil
}

func (m *IMDS) fetch(ctx context.Context) (string, error) {
	base := m.Endpoint
	if base == "" {
		base = "http://169.254.169.254"
	}
	client := m.Client
	if client == nil {
		client = http.DefaultClient
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	token, err := m.do(ctx, client, timeout, http.MethodPut, base+"/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds", "60")
	if err != nil {
		return "", fmt.Errorf("IMDSv2 token: %w", err)
	}
	t, err := m.do(ctx, client, timeout, http.MethodGet, base+"/latest/meta-data/instance-type", "X-aws-ec2-metadata-token", token)
	if err != nil {
		return "", fmt.Errorf("IMDS instance-type: %w", err)
	}
	if t == "" {
		return "", fmt.Errorf("IMDS instance-type: empty answer")
	}
	return t, nil
}

func (m *IMDS) do(ctx context.Context, client *http.Client, timeout time.Duration, method, url, header, value string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(header, value)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}
