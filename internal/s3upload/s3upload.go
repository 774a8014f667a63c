// Package s3upload puts a diagnostics bundle into S3 with the node's own
// credentials. It is linked into nodehealthctl only: the daemon runs
// `nodehealthctl collect --upload`, so that the AWS SDK does not weigh on
// the long-running process.
//
// Credentials and region come from the SDK's default chain: environment,
// shared config, then the instance profile and the region through IMDSv2
// on EC2. AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_ENDPOINT_URL_S3 and the
// other standard variables work as everywhere; with a custom S3 endpoint
// (an S3-compatible server, a test) addressing is path-style.
package s3upload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// DefaultAttempts bounds the requests of one upload, first try included.
const DefaultAttempts = 3

// Options tune Put.
type Options struct {
	// Attempts bounds the requests (default DefaultAttempts); the SDK's
	// standard retryer backs off between them.
	Attempts int
	// Timeout bounds the whole upload, retries and credential lookups
	// included (default 5m).
	Timeout time.Duration
}

// Put uploads file to bucket/key. It returns how many requests were made,
// also on failure.
func Put(ctx context.Context, file, bucket, key string, opts Options) (attempts int, err error) {
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	cfg, err := config.LoadDefaultConfig(ctx, config.WithEC2IMDSRegion(), config.WithRetryMaxAttempts(opts.Attempts))
	if err != nil {
		return 0, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return 0, errors.New("no AWS region: not on EC2 (IMDS did not answer) and AWS_REGION is not set")
	}
	var n atomic.Int32
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if o.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
		o.APIOptions = append(o.APIOptions, countAttempts(&n))
	})
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	_, err = client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          f,
		ContentLength: aws.Int64(fi.Size()),
		ContentType:   aws.String("application/gzip"),
	})
	if err != nil {
		return int(n.Load()), fmt.Errorf("put s3://%s/%s: %w", bucket, key, err)
	}
	return int(n.Load()), nil
}

// countAttempts counts the requests the retryer sends.
func countAttempts(n *atomic.Int32) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("nodehealthdCountAttempts",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				n.Add(1)
				return next.HandleFinalize(ctx, in)
			}), "Retry", middleware.After)
	}
}
