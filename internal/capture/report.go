package capture

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// Reasons of the upload's outcome. They are Warnings, so that the cluster
// publisher makes them events on the Node; they are filed under
// StorageReady with the daemon's other reports about its own files.
const (
	ReasonUploaded     = "DiagnosticsUploaded"
	ReasonUploadFailed = "DiagnosticsUploadFailed"
	// Source is the findings' source and rule, and the detector's name.
	Source = "diagnostics"
)

var (
	uploaded = reason.Declare(reason.Reason{
		Name: ReasonUploaded, Condition: finding.StorageReady, Severity: finding.Warning, Detector: Source,
		Description: "nodehealthd captured a diagnostics bundle (a condition turned False, or a Warning listed in " +
			"diagnostics.onWarning was seen) and uploaded it to diagnostics.upload.s3. The message names the object.",
		Action:   "Download the bundle from the object the message names (aws s3 cp) before the node is replaced; see docs/diagnostics.md.",
		Recovery: "An event, once per upload.",
	})
	uploadFailed = reason.Declare(reason.Reason{
		Name: ReasonUploadFailed, Condition: finding.StorageReady, Severity: finding.Warning, Detector: Source,
		Description: "A diagnostics bundle could not be uploaded to diagnostics.upload.s3 after bounded retries, or no " +
			"bundle could be captured to upload. The message says why (no credentials, access denied, no such bucket, timeout).",
		Action: "Check the instance profile allows s3:PutObject on the bucket and prefix, and that the node reaches S3. " +
			"The bundle, when one was written, stays in diagnostics.dir on the node until retention removes it.",
		Recovery: "An event, once per failed upload.",
	})
)

// outcome is an upload's end, waiting to become a finding.
type outcome struct {
	trigger trigger
	url     string
	bytes   int64
	err     string
}

// finding is the outcome as the reporter raises it, detected at.
func (o outcome) finding(at time.Time) finding.Finding {
	if o.err == "" {
		msg := fmt.Sprintf("diagnostics bundle for %s (%s) uploaded to %s (%d bytes)", o.trigger.reason, o.trigger.what, o.url, o.bytes)
		return uploaded.Result(msg, path.Base(o.url)).Finding(Source, Source, at)
	}
	msg := fmt.Sprintf("diagnostics bundle for %s (%s) not uploaded to %s: %s", o.trigger.reason, o.trigger.what, o.url, o.err)
	return uploadFailed.Result(msg, path.Base(o.url)).Finding(Source, Source, at)
}

// Detector returns the detector that raises upload outcomes as findings:
// the way they re-enter the pipeline. The daemon builds detectors again on
// every reload; each returned detector reads the same outcomes.
func (c *Capturer) Detector() detector.Detector { return reporter{c} }

type reporter struct{ c *Capturer }

func (reporter) Name() string { return Source }

func (r reporter) Run(ctx context.Context, emit detector.Emitter) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case o := <-r.c.outcomes:
			emit.Raise(o.finding(r.c.opts.Now()))
		}
	}
}
