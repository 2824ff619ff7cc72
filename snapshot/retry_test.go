package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/recoverd/recoverd/internal/retry"
)

func TestRetry(t *testing.T) {
	p := retry.Options{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxElapsed: 300 * time.Millisecond}
	flaky := unavailable("get", "repo", "k", syscall.ECONNRESET)

	t.Run("TransientThenSuccess", func(t *testing.T) {
		n := 0
		err := retryCall(context.Background(), p, func(context.Context) error {
			if n++; n < 3 {
				return flaky
			}
			return nil
		})
		if err != nil || n != 3 {
			t.Fatalf("err %v after %d attempts", err, n)
		}
	})

	t.Run("PermanentOnce", func(t *testing.T) {
		for _, perm := range []error{
			notFound("get", "repo", "k", nil),
			accessDenied("get", "repo", "k", nil),
			unavailablePermanent("get", "repo", "k", errors.New("no bucket")),
			fmt.Errorf("%w: file x", ErrChecksum),
			context.Canceled,
			errors.New("anything else"),
		} {
			n := 0
			err := retryCall(context.Background(), p, func(context.Context) error { n++; return perm })
			if n != 1 || !errors.Is(err, perm) {
				t.Fatalf("%v: %d attempts, err %v", perm, n, err)
			}
		}
	})

	t.Run("BudgetRunsOut", func(t *testing.T) {
		start := time.Now()
		n := 0
		err := retryCall(context.Background(), p, func(context.Context) error { n++; return flaky })
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.ECONNRESET) || !strings.Contains(err.Error(), "gave up after") {
			t.Fatalf("err %v", err)
		}
		if d := time.Since(start); d > time.Second || n < 3 {
			t.Fatalf("%d attempts in %v for a 300ms budget", n, d)
		}
	})

	t.Run("CancelDuringBackoff", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		slow := retry.Options{Initial: time.Hour, Max: time.Hour, MaxElapsed: 10 * time.Hour}
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		err := retryCall(ctx, slow, func(context.Context) error { return flaky })
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) || retry.IsTransient(err) {
			t.Fatalf("err %v: want the cancel and the last error, not transient", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("cancel took %v", d)
		}
	})

	t.Run("OneAttempt", func(t *testing.T) {
		n := 0
		retryCall(context.Background(), retry.Options{MaxElapsed: -1}, func(context.Context) error { n++; return flaky })
		if n != 1 {
			t.Fatalf("%d attempts with a negative budget", n)
		}
	})
}

func TestS3Classify(t *testing.T) {
	r := &S3Repository{bucket: "b", endpoint: "127.0.0.1:1", region: "us-east-1"}
	ctx := context.Background()
	type want struct {
		kind      error
		transient bool
	}
	cases := map[string]struct {
		err  error
		want want
	}{
		"NoSuchKey":       {minio.ErrorResponse{Code: "NoSuchKey", StatusCode: 404}, want{ErrNotFound, false}},
		"404 HEAD":        {minio.ErrorResponse{StatusCode: 404}, want{ErrNotFound, false}},
		"NoSuchBucket":    {minio.ErrorResponse{Code: "NoSuchBucket", StatusCode: 404}, want{ErrUnavailable, false}},
		"AccessDenied":    {minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}, want{ErrAccessDenied, false}},
		"bad key":         {minio.ErrorResponse{Code: "InvalidAccessKeyId", StatusCode: 403}, want{ErrAccessDenied, false}},
		"bad secret":      {minio.ErrorResponse{Code: "SignatureDoesNotMatch", StatusCode: 403}, want{ErrAccessDenied, false}},
		"SlowDown":        {minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}, want{ErrUnavailable, true}},
		"InternalError":   {minio.ErrorResponse{Code: "InternalError", StatusCode: 500}, want{ErrUnavailable, true}},
		"502":             {minio.ErrorResponse{StatusCode: 502}, want{ErrUnavailable, true}},
		"429":             {minio.ErrorResponse{Code: "TooManyRequests", StatusCode: 429}, want{ErrUnavailable, true}},
		"400":             {minio.ErrorResponse{Code: "InvalidArgument", StatusCode: 400}, want{ErrUnavailable, false}},
		"wrapped 503":     {fmt.Errorf("x: %w", minio.ErrorResponse{Code: "ServiceUnavailable", StatusCode: 503}), want{ErrUnavailable, true}},
		"refused":         {&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, want{ErrUnavailable, true}},
		"reset":           {&net.OpError{Op: "read", Err: syscall.ECONNRESET}, want{ErrUnavailable, true}},
		"cut short":       {io.ErrUnexpectedEOF, want{ErrUnavailable, true}},
		"request timeout": {fmt.Errorf("%w: %w", errRequestTimeout, context.Canceled), want{ErrUnavailable, true}},
	}
	for name, c := range cases {
		err := r.classify(ctx, "get", "k", c.err)
		if !errors.Is(err, c.want.kind) || retry.IsTransient(err) != c.want.transient {
			t.Errorf("%s: %v (transient %v), want %v transient %v", name, err, retry.IsTransient(err), c.want.kind, c.want.transient)
		}
		if c.want.kind == ErrAccessDenied && !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: access denied is not also unavailable", name)
		}
		if c.want.kind != ErrNotFound && errors.Is(err, ErrNotFound) {
			t.Errorf("%s: reported as not found: %v", name, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := r.classify(cctx, "get", "k", syscall.ECONNRESET); !errors.Is(err, context.Canceled) || retry.IsTransient(err) || errors.Is(err, ErrUnavailable) {
		t.Errorf("error after the caller's cancel: %v", err)
	}
}
