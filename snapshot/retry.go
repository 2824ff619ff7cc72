package snapshot

import (
	"context"
	"fmt"
	"time"

	"github.com/recoverd/recoverd/internal/retry"
)

// loop is the retry loop of repository calls under p (zero fields are
// retry.Repository's): transient repository errors (retry.IsTransient) are
// retried until the budget is spent, and the error given up with carries
// the last repository error, with how many attempts were made for how
// long; when the caller's context ends, the error is the context's with
// the last repository error kept visible (ctxErr).
func loop(p retry.Options) retry.Loop {
	return retry.Loop{
		Options: retry.Repository.With(p),
		GiveUp: func(err error, r *retry.Retrier) error {
			return fmt.Errorf("%w (gave up after %d attempts in %v)", err, r.Attempts(), r.Elapsed().Round(time.Millisecond))
		},
		Stopped: ctxErr,
	}
}

// retryCall runs fn until it succeeds, fails permanently, or the policy's
// budget or ctx runs out.
func retryCall(ctx context.Context, p retry.Options, fn func(ctx context.Context) error) error {
	return loop(p).Do(ctx, fn)
}

// policyOf returns the retry policy for calls on repo: the one it carries
// (S3Options.Retry) or retry.Repository.
func policyOf(repo Repository) retry.Options {
	if p, ok := repo.(interface{ RetryPolicy() retry.Options }); ok {
		return retry.Repository.With(p.RetryPolicy())
	}
	return retry.Repository
}
