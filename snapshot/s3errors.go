package snapshot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// How S3 failures become this package's errors: an S3 error code or HTTP
// status decides the kind (not found, access denied, unavailable) and
// whether a retry may help; a network failure is unavailable and may pass.

// errRequestTimeout is the cause of a request context that ran out (a
// timeout is one).
var errRequestTimeout = errors.New("no answer in time")

// timeout is the cause of a request that got no answer within its
// deadline; it is an errRequestTimeout.
type timeout time.Duration

func (d timeout) Error() string {
	return fmt.Sprintf("no answer within %v (the store is hung, overloaded or has lost its quorum)", time.Duration(d).Round(time.Millisecond))
}

func (d timeout) Is(target error) bool { return target == errRequestTimeout }

// classify maps a minio-go or network error to the package's kinds. ctx is
// the caller's context: when it is done, its error is returned as is.
func (r *S3Repository) classify(ctx context.Context, op, key string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("snapshot: %s %s: %w", op, key, context.Cause(ctx))
	}
	repo := r.String()
	var er minio.ErrorResponse
	if errors.As(err, &er) && (er.Code != "" || er.StatusCode != 0) {
		// Keep only the code, status and message: no request details.
		e := fmt.Errorf("%s (HTTP %d): %s", er.Code, er.StatusCode, er.Message)
		switch er.Code {
		case "NoSuchKey", "NoSuchObject", "NoSuchVersion":
			return notFound(op, repo, key, e)
		case "NoSuchBucket":
			return unavailablePermanent(op, repo, key, fmt.Errorf("bucket %q does not exist: %w", r.bucket, e))
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
			"AccountProblem", "AllAccessDisabled", "InvalidSecurity", "AuthorizationHeaderMalformed":
			return accessDenied(op, repo, key, e)
		case "SlowDown", "SlowDownRead", "SlowDownWrite", "TooManyRequests", "InternalError", "ServiceUnavailable", "RequestTimeout",
			"XMinioServerNotInitialized", "OperationTimedOut", "XMinioReadQuorum", "XMinioWriteQuorum", "RequestTimeTooSkewed":
			return unavailable(op, repo, key, e)
		}
		switch {
		case er.StatusCode == http.StatusNotFound:
			return notFound(op, repo, key, e)
		case er.StatusCode == http.StatusForbidden || er.StatusCode == http.StatusUnauthorized:
			return accessDenied(op, repo, key, e)
		case er.StatusCode >= 500 || er.StatusCode == http.StatusTooManyRequests || er.StatusCode == http.StatusRequestTimeout:
			return unavailable(op, repo, key, e)
		}
		return unavailablePermanent(op, repo, key, e)
	}
	// Network errors (refused, reset, EOF, DNS, TLS handshake timeouts),
	// our request deadline, a body cut short: all may pass.
	return unavailable(op, repo, key, r.netError(err))
}

// netError words a network failure for the people who read it. The
// repository's error already names the operation, key and repository, so
// minio-go's `Put "<url>":` prefix goes; a request that got no answer in
// time (our deadline, or the transport's wait for response headers) says
// so, and what may cause it: a distributed MinIO that lost its quorum
// holds requests without answering. The chain stays for errors.Is and As.
func (r *S3Repository) netError(err error) error {
	var t timeout
	var ue *url.Error
	switch {
	case errors.As(err, &t):
		return &worded{msg: t.Error(), err: err}
	case errors.As(err, &ue) && strings.Contains(ue.Err.Error(), "timeout awaiting response headers"):
		return &worded{msg: timeout(r.requestTimeout).Error(), err: err}
	case errors.As(err, &ue):
		return &worded{msg: ue.Err.Error(), err: err}
	}
	return err
}

// worded is an error with another message.
type worded struct {
	msg string
	err error
}

func (w *worded) Error() string { return w.msg }
func (w *worded) Unwrap() error { return w.err }

// request derives the context of one request: it is cancelled when ctx
// is, or after d with errRequestTimeout as its cause.
func request(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d, timeout(d))
}

func (r *S3Repository) timeoutErr(rctx context.Context, err error) error {
	if cause := context.Cause(rctx); cause != nil && errors.Is(cause, errRequestTimeout) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return err
}
