package transfer

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// RetryPolicy says how transient errors are retried: exponential backoff
// from Initial to Max (with jitter), giving up once MaxElapsed has passed
// without a byte of progress, or after MaxRetries attempts in a row without
// progress when that is set. Progress resets the budget, so a long transfer
// cut now and then is never abandoned for its length alone.
type RetryPolicy struct {
	Initial    time.Duration // default 200ms
	Max        time.Duration // default 10s
	MaxElapsed time.Duration // default 2 minutes
	MaxRetries int           // default 0: bounded by MaxElapsed only
}

func (p *RetryPolicy) defaults() {
	if p.Initial <= 0 {
		p.Initial = 200 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 10 * time.Second
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = 2 * time.Minute
	}
}

// retrier runs the retry policy of one transfer.
type retrier struct {
	p       RetryPolicy
	bo      *backoff.ExponentialBackOff
	retries int
}

func newRetrier(p RetryPolicy) *retrier {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = p.Initial, p.Max, p.MaxElapsed
	bo.Reset()
	return &retrier{p: p, bo: bo}
}

// next returns the pause before the next attempt, or false when the budget
// is spent. progress says whether the failed attempt moved forward.
func (r *retrier) next(progress bool) (time.Duration, bool) {
	if progress {
		r.bo.Reset()
		r.retries = 0
	}
	r.retries++
	if r.p.MaxRetries > 0 && r.retries > r.p.MaxRetries {
		return 0, false
	}
	d := r.bo.NextBackOff()
	return d, d != backoff.Stop
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
