package s3upload

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/s3upload/s3test"
)

func bundleFile(t *testing.T) (string, []byte) {
	data := bytes.Repeat([]byte("bundle-bytes "), 5000)
	p := filepath.Join(t.TempDir(), "b.tar.gz")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// TestPutWithInstanceProfile: with no credentials or region in the
// environment, the SDK gets both from IMDSv2 and the object lands under
// the key asked for, byte for byte.
func TestPutWithInstanceProfile(t *testing.T) {
	srv := s3test.Start(t, "diag-bucket")
	srv.Setenv(t)
	file, data := bundleFile(t)
	n, err := Put(context.Background(), file, "diag-bucket", "prefix/node-a/b.tar.gz", Options{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if n != 1 {
		t.Errorf("attempts = %d, want 1", n)
	}
	got, ok := srv.Object("diag-bucket", "prefix/node-a/b.tar.gz")
	if !ok || !bytes.Equal(got, data) {
		t.Fatalf("object: found %v, %d bytes, want %d; keys %v", ok, len(got), len(data), srv.Keys("diag-bucket"))
	}
	for _, p := range []string{"/latest/api/token", "/latest/dynamic/instance-identity/document", "/latest/meta-data/iam/security-credentials/" + s3test.Role} {
		if srv.IMDSRequests(p) == 0 {
			t.Errorf("IMDS %s was not asked: region and credentials must come from the instance", p)
		}
	}
}

// TestPutRetriesBoundedThenFails: a server that keeps failing gets
// exactly the bounded number of attempts, and the error says what failed.
func TestPutRetriesBoundedThenFails(t *testing.T) {
	srv := s3test.Start(t, "diag-bucket")
	srv.Setenv(t)
	srv.Fail.Store(true)
	file, _ := bundleFile(t)
	n, err := Put(context.Background(), file, "diag-bucket", "k.tar.gz", Options{Attempts: 2, Timeout: 30 * time.Second})
	if err == nil {
		t.Fatal("Put succeeded against a failing server")
	}
	if n != 2 || srv.S3Requests.Load() != 2 {
		t.Errorf("attempts = %d, server saw %d, want 2 each", n, srv.S3Requests.Load())
	}
	if !strings.Contains(err.Error(), "s3://diag-bucket/k.tar.gz") {
		t.Errorf("error %q does not name the object", err)
	}
}

func TestPutMissingBucket(t *testing.T) {
	srv := s3test.Start(t, "diag-bucket")
	srv.Setenv(t)
	file, _ := bundleFile(t)
	if _, err := Put(context.Background(), file, "no-such-bucket", "k.tar.gz", Options{Timeout: 30 * time.Second}); err == nil || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Fatalf("Put to a missing bucket: %v, want NoSuchBucket", err)
	}
}
