// Package s3test runs what an upload talks to on EC2, on loopback, for
// tests: an S3-compatible server (gofakes3, in memory) and an IMDSv2 that
// hands out the region and instance-profile credentials. Env points the
// AWS SDK's ordinary configuration at them, so that the code under test
// takes the same path as on a node.
package s3test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Region and Role are what the fake IMDS reports.
const (
	Region = "us-test-1"
	Role   = "node-role"
)

// Server is a fake S3 and a fake IMDS.
type Server struct {
	S3, IMDS *httptest.Server
	backend  *s3mem.Backend
	// Fail makes S3 answer every request with 503 while set.
	Fail atomic.Bool
	// S3Requests counts requests that reached S3.
	S3Requests atomic.Int32

	mu sync.Mutex
	// imdsPaths counts IMDS requests by path.
	imdsPaths map[string]int
}

// Start starts both servers; they stop when the test ends. bucket is
// created.
func Start(t testing.TB, bucket string) *Server {
	t.Helper()
	s := &Server{backend: s3mem.New(), imdsPaths: map[string]int{}}
	if err := s.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(s.backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	s.S3 = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.S3Requests.Add(1)
		if s.Fail.Load() {
			io.Copy(io.Discard, r.Body)
			http.Error(w, "<Error><Code>ServiceUnavailable</Code><Message>test</Message></Error>", http.StatusServiceUnavailable)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(s.S3.Close)
	s.IMDS = httptest.NewServer(http.HandlerFunc(s.imds))
	t.Cleanup(s.IMDS.Close)
	return s
}

// imds answers as IMDSv2 does: a token first, then metadata only with it.
func (s *Server) imds(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.imdsPaths[r.URL.Path]++
	s.mu.Unlock()
	const token = "imds-session-token"
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		io.WriteString(w, token)
		return
	}
	if r.Header.Get("X-aws-ec2-metadata-token") != token {
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/latest/dynamic/instance-identity/document":
		json.NewEncoder(w).Encode(map[string]string{"region": Region, "instanceId": "i-0123456789abcdef0"})
	case "/latest/meta-data/iam/security-credentials/":
		io.WriteString(w, Role)
	case "/latest/meta-data/iam/security-credentials/" + Role:
		json.NewEncoder(w).Encode(map[string]string{
			"Code": "Success", "Type": "AWS-HMAC",
			"AccessKeyId": "ASIAFAKEFAKEFAKEFAKE", "SecretAccessKey": "fake-secret", "Token": "fake-session-token",
			"LastUpdated": time.Now().UTC().Format(time.RFC3339),
			"Expiration":  time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		})
	default:
		http.NotFound(w, r)
	}
}

// IMDSRequests is how many requests IMDS got for path.
func (s *Server) IMDSRequests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.imdsPaths[path]
}

// Env is the environment of a process on an EC2 node whose IMDS and S3
// endpoint are these servers: no credentials or region of its own, no
// shared config files.
func (s *Server) Env(t testing.TB) []string {
	none := filepath.Join(t.TempDir(), "none")
	return []string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + s.IMDS.URL,
		"AWS_ENDPOINT_URL_S3=" + s.S3.URL,
		"AWS_CONFIG_FILE=" + none,
		"AWS_SHARED_CREDENTIALS_FILE=" + none,
	}
}

// Setenv applies Env to this process for the test, with the variables
// that would bypass IMDS unset.
func (s *Server) Setenv(t *testing.T) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
		"AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_EC2_METADATA_DISABLED", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range s.Env(t) {
		for i := range kv {
			if kv[i] == '=' {
				t.Setenv(kv[:i], kv[i+1:])
				break
			}
		}
	}
}

// Object returns the content of bucket/key, or ok false.
func (s *Server) Object(bucket, key string) (data []byte, ok bool) {
	obj, err := s.backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil, false
	}
	defer obj.Contents.Close()
	b, err := io.ReadAll(obj.Contents)
	return b, err == nil
}

// Keys lists the keys of bucket.
func (s *Server) Keys(bucket string) []string {
	list, err := s.backend.ListBucket(bucket, nil, gofakes3.ListBucketPage{})
	if err != nil {
		return nil
	}
	var out []string
	for _, o := range list.Contents {
		out = append(out, o.Key)
	}
	return out
}
