package nodediag

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/kubewatch"
)

// RedactURL is s fit for a log line or a status message: a presigned URL's
// query (X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token) is a
// credential to the object, and so is user info.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		// The parser's message quotes the URL: never passed on.
		return "(unparsable URL)"
	}
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = "REDACTED", false
	}
	return u.String()
}

// checkDestination accepts DestinationNode or an absolute http(s) URL.
func checkDestination(dest string) error {
	if dest == DestinationNode {
		return nil
	}
	u, err := url.Parse(dest)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("destination %s: want %q or an http(s) URL (a presigned PUT)", RedactURL(dest), DestinationNode)
	}
	return nil
}

// Upload bounds: each attempt may take uploadBase plus the time to send the
// bundle at uploadRate (a slow link, not a fast one), up to uploadMax.
const (
	uploadAttempts = 3
	uploadBase     = 30 * time.Second
	uploadRate     = 256 << 10 // bytes per second
	uploadMax      = 20 * time.Minute
)

// uploadTimeout is one attempt's bound for a bundle of size bytes.
func uploadTimeout(size int64) time.Duration {
	return min(uploadBase+time.Duration(size/uploadRate)*time.Second, uploadMax)
}

// s3Code finds an S3 error document's code and message; the rest of it
// (SignatureProvided, StringToSign) is not passed on.
var s3Code = regexp.MustCompile(`<(Code|Message)>([^<]{0,200})</`)

// put sends the file to a presigned URL with PUT, retrying network
// failures and 5xx/408/429 answers with backoff; another answer ends it at
// once (an expired or wrong URL does not get better). Errors never hold
// the URL's query. It returns the attempts made.
func put(ctx context.Context, client *http.Client, dest, path string, wait func(context.Context, time.Duration) bool) (int, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	var last error
	for attempt := 1; attempt <= uploadAttempts; attempt++ {
		if attempt > 1 && !wait(ctx, kubewatch.Backoff(attempt, 10*time.Second)) {
			return attempt - 1, ctx.Err()
		}
		retry, err := putOnce(ctx, client, dest, path, fi.Size())
		if err == nil {
			return attempt, nil
		}
		last = err
		if !retry || ctx.Err() != nil {
			return attempt, err
		}
	}
	return uploadAttempts, last
}

func putOnce(ctx context.Context, client *http.Client, dest, path string, size int64) (retry bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, uploadTimeout(size))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, dest, f)
	if err != nil {
		return false, errors.New("bad destination URL")
	}
	req.ContentLength = size
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message quotes the whole URL
		}
		return true, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	msg := resp.Status
	for _, m := range s3Code.FindAllSubmatch(body, 2) {
		msg += fmt.Sprintf(" %s: %s", m[1], m[2])
	}
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout
	return retry, errors.New(msg)
}
