// Package retry is recoverd's one retry policy: exponential backoff with
// jitter on top of github.com/cenkalti/backoff/v4, bounded by a budget of
// time without progress and, optionally, a count of retries in a row
// (CockroachDB's util/retry.Options). Every retried operation uses it: peer
// file and op streams and calls to a source (transfer, recovery),
// repository calls and snapshot downloads (snapshot). IsTransient is the
// one classification of the errors worth another attempt.
//
// The project's defaults live here: Peer for everything that talks to a
// source node, Repository for the snapshot repository. recoverd builds one
// policy from --retry-budget and passes it down (cmd/recoverd).
//
// Three ways to use it, from the most to the least hands-on:
//
//   - a Retrier in a loop of one's own: Next gives the pause before the
//     next attempt, or false once the budget is spent; Progress resets the
//     budget after an attempt that moved forward (transfer's streams);
//   - Loop.Pause after each failed attempt: it classifies the error,
//     pauses, and says what to stop with (snapshot's downloads);
//   - Loop.Do: the whole loop around one call (snapshot's repository calls,
//     recovery's calls to the source).
package retry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Options is a retry policy. Zero fields take the defaults of the caller
// (Peer.With(o), Repository.With(o)).
type Options struct {
	// Initial is the first pause; Max the longest (never below Initial).
	Initial, Max time.Duration
	// Multiplier makes each pause longer than the one before; pauses are
	// randomized by ±50% (backoff's default jitter).
	Multiplier float64
	// MaxElapsed is the budget: no further attempt starts once this long
	// has passed since the first one, or since the last progress, without
	// success. A negative value means one attempt, no retry.
	MaxElapsed time.Duration
	// MaxRetries, when positive, also bounds the retries in a row without
	// progress.
	MaxRetries int
}

// The project's defaults.
var (
	// Peer is the policy of peer streams and calls to a source: a source
	// restarting or a network cut is ridden out for two minutes.
	Peer = Options{Initial: 200 * time.Millisecond, Max: 10 * time.Second, Multiplier: backoff.DefaultMultiplier, MaxElapsed: 2 * time.Minute}
	// Repository is the policy of snapshot repository calls and downloads:
	// shorter, since a recovery falls back to its peer when the repository
	// fails.
	Repository = Options{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Multiplier: backoff.DefaultMultiplier, MaxElapsed: 30 * time.Second}
)

// With returns d with the fields o sets (non-zero) in place of its own,
// and Max raised to Initial when below it.
func (d Options) With(o Options) Options {
	if o.Initial > 0 {
		d.Initial = o.Initial
	}
	if o.Max > 0 {
		d.Max = o.Max
	}
	if o.Multiplier > 0 {
		d.Multiplier = o.Multiplier
	}
	if o.MaxElapsed != 0 {
		d.MaxElapsed = o.MaxElapsed
	}
	if o.MaxRetries > 0 {
		d.MaxRetries = o.MaxRetries
	}
	d.Max = max(d.Max, d.Initial)
	return d
}

// Retrier runs a policy for one operation. It is not safe for concurrent
// use: each operation (each file, each part) has its own.
type Retrier struct {
	o        Options
	bo       *backoff.ExponentialBackOff
	attempts int // failed attempts
	inARow   int // failed attempts since the start or the last progress
	start    time.Time
}

// New starts the budget of o. Fields o leaves zero are Peer's: a caller
// with other defaults fills them first (Repository.With(o)).
func New(o Options) *Retrier {
	o = Peer.With(o)
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.Multiplier, bo.MaxElapsedTime = o.Initial, o.Max, o.Multiplier, max(o.MaxElapsed, 0)
	bo.Reset()
	return &Retrier{o: o, bo: bo, start: time.Now()}
}

// Progress says the last attempt moved forward: the budget starts again.
func (r *Retrier) Progress() {
	r.bo.Reset()
	r.inARow = 0
	r.start = time.Now()
}

// Next counts a failed attempt and returns the pause before the next one,
// or false when the budget is spent.
func (r *Retrier) Next() (time.Duration, bool) {
	r.attempts++
	r.inARow++
	if r.o.MaxElapsed < 0 || r.o.MaxRetries > 0 && r.inARow > r.o.MaxRetries {
		return 0, false
	}
	d := r.bo.NextBackOff()
	return d, d != backoff.Stop
}

// Attempts is the number of failed attempts so far, progress or not.
func (r *Retrier) Attempts() int { return r.attempts }

// Elapsed is the time since the first attempt or the last progress.
func (r *Retrier) Elapsed() time.Duration { return time.Since(r.start) }

// Sleep pauses for d, or returns context.Cause(ctx) when ctx ends first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Loop is a policy with what a retry loop decides besides the pauses:
// which errors to retry and what to stop with.
type Loop struct {
	Options
	// Transient says whether an attempt that failed with err may succeed
	// if made again (default IsTransient).
	Transient func(err error) bool
	// OnRetry, when set, is called before each pause.
	OnRetry func(err error, pause time.Duration)
	// GiveUp returns the error to stop with once the budget is spent,
	// from the last attempt's (default: that error as it is).
	GiveUp func(err error, r *Retrier) error
	// Stopped returns the error to stop with when ctx ended, after an
	// attempt or during a pause, from the last attempt's (default:
	// context.Cause(ctx)).
	Stopped func(ctx context.Context, err error) error
}

// Start returns a Retrier of the loop's policy.
func (l Loop) Start() *Retrier { return New(l.Options) }

// Pause is called after an attempt failed with err. It returns nil after
// pausing when another attempt is due, or the error to stop with: err
// unwrapped from backoff.Permanent (the attempt says it is the last one,
// as it is), Stopped's when ctx ended, err when it is not transient,
// GiveUp's when the budget is spent.
func (l Loop) Pause(ctx context.Context, r *Retrier, err error) error {
	if p := (*backoff.PermanentError)(nil); errors.As(err, &p) {
		return p.Err
	}
	if ctx.Err() != nil {
		return l.stopped(ctx, err)
	}
	transient := l.Transient
	if transient == nil {
		transient = IsTransient
	}
	if !transient(err) {
		return err
	}
	d, ok := r.Next()
	if !ok {
		if l.GiveUp != nil {
			return l.GiveUp(err, r)
		}
		return err
	}
	if l.OnRetry != nil {
		l.OnRetry(err, d)
	}
	if Sleep(ctx, d) != nil {
		return l.stopped(ctx, err)
	}
	return nil
}

func (l Loop) stopped(ctx context.Context, err error) error {
	if l.Stopped != nil {
		return l.Stopped(ctx, err)
	}
	return context.Cause(ctx)
}

// Do calls fn until it succeeds or Pause says to stop, and returns nil or
// Pause's error. fn may end the loop at once with backoff.Permanent(err).
func (l Loop) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	r := l.Start()
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if err = l.Pause(ctx, r, err); err != nil {
			return err
		}
	}
}
