package snapshot

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// RetryPolicy bounds the retries of transient repository errors:
// exponential backoff with jitter from InitialInterval up to MaxInterval,
// until MaxElapsed has passed since the first attempt.
type RetryPolicy struct {
	InitialInterval time.Duration // default 100ms
	MaxInterval     time.Duration // default 5s
	MaxElapsed      time.Duration // default 30s; a negative value means one attempt
}

// DefaultRetry is the policy used where none is given.
var DefaultRetry = RetryPolicy{InitialInterval: 100 * time.Millisecond, MaxInterval: 5 * time.Second, MaxElapsed: 30 * time.Second}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.InitialInterval <= 0 {
		p.InitialInterval = DefaultRetry.InitialInterval
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = DefaultRetry.MaxInterval
	}
	if p.MaxInterval < p.InitialInterval {
		p.MaxInterval = p.InitialInterval
	}
	if p.MaxElapsed == 0 {
		p.MaxElapsed = DefaultRetry.MaxElapsed
	}
	return p
}

func (p RetryPolicy) newBackOff() *backoff.ExponentialBackOff {
	p = p.withDefaults()
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.InitialInterval
	b.MaxInterval = p.MaxInterval
	b.MaxElapsedTime = max(p.MaxElapsed, 0)
	if p.MaxElapsed < 0 {
		b.MaxElapsedTime = time.Nanosecond
	}
	b.Reset()
	return b
}

// retrier runs attempts of one logical operation. It is a loop rather than
// backoff.Retry so the error returned when the budget or the context runs
// out carries the last repository error (backoff.Retry would return only
// ctx.Err()).
type retrier struct {
	b        *backoff.ExponentialBackOff
	attempts int
	start    time.Time
}

func newRetrier(p RetryPolicy) *retrier {
	return &retrier{b: p.newBackOff(), start: time.Now()}
}

// next is called after a failed attempt. It returns nil when another
// attempt should be made (after sleeping), or the error to give up with.
func (r *retrier) next(ctx context.Context, err error) error {
	r.attempts++
	if cerr := ctxErr(ctx, err); cerr != nil {
		return cerr
	}
	if !IsTransient(err) {
		return err
	}
	d := r.b.NextBackOff()
	if d == backoff.Stop {
		return fmt.Errorf("%w (gave up after %d attempts in %v)", err, r.attempts, time.Since(r.start).Round(time.Millisecond))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctxErr(ctx, err)
	case <-t.C:
		return nil
	}
}

// progress resets the backoff after an attempt that moved data, so a long
// download that makes progress between failures is not cut off by the
// elapsed-time budget of earlier failures.
func (r *retrier) progress() {
	r.b.Reset()
	r.start = time.Now()
}

// retry runs fn until it succeeds, fails permanently, or the policy's
// budget or ctx runs out.
func retry(ctx context.Context, p RetryPolicy, fn func(ctx context.Context) error) error {
	r := newRetrier(p)
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if err = r.next(ctx, err); err != nil {
			return err
		}
	}
}

// policyOf returns the retry policy for calls on repo: the one it carries
// (S3Options.Retry) or DefaultRetry.
func policyOf(repo Repository) RetryPolicy {
	if p, ok := repo.(interface{ RetryPolicy() RetryPolicy }); ok {
		return p.RetryPolicy().withDefaults()
	}
	return DefaultRetry
}
