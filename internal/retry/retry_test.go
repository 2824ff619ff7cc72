package retry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

func TestWith(t *testing.T) {
	got := Repository.With(Options{Initial: time.Second, MaxElapsed: -1, MaxRetries: 3})
	want := Options{Initial: time.Second, Max: 5 * time.Second, Multiplier: 1.5, MaxElapsed: -1, MaxRetries: 3}
	if got != want {
		t.Fatalf("Repository.With = %+v, want %+v", got, want)
	}
	if got := Peer.With(Options{Initial: time.Minute}); got.Max != time.Minute {
		t.Fatalf("Max %v below Initial %v", got.Max, got.Initial)
	}
	if got := Peer.With(Options{}); got != Peer {
		t.Fatalf("Peer.With(zero) = %+v", got)
	}
}

func TestRetrierBudget(t *testing.T) {
	t.Run("MaxRetriesInARow", func(t *testing.T) {
		failuresUntilGiveUp := func(progressAt int) int {
			r := New(Options{Initial: time.Nanosecond, MaxRetries: 2})
			for i := 1; i <= 10; i++ {
				if _, ok := r.Next(); !ok {
					return i
				}
				if i == progressAt {
					r.Progress() // the count of failures in a row starts again
				}
			}
			return 0
		}
		if n := failuresUntilGiveUp(0); n != 3 {
			t.Fatalf("gave up at failure %d, want 3 (2 retries)", n)
		}
		if n := failuresUntilGiveUp(2); n != 5 {
			t.Fatalf("with progress after failure 2: gave up at failure %d, want 5", n)
		}
	})
	t.Run("OneAttempt", func(t *testing.T) {
		if _, ok := New(Options{MaxElapsed: -1}).Next(); ok {
			t.Fatal("a negative budget retried")
		}
	})
}

func TestLoopDo(t *testing.T) {
	errFlaky, errBad := errors.New("flaky"), errors.New("bad")
	l := Loop{Options: Options{Initial: time.Nanosecond, Max: time.Nanosecond, MaxRetries: 4},
		Transient: func(err error) bool { return errors.Is(err, errFlaky) }}

	n := 0
	err := l.Do(context.Background(), func(context.Context) error {
		if n++; n < 3 {
			return errFlaky
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("transient then success: %v after %d calls", err, n)
	}

	n = 0
	err = l.Do(context.Background(), func(context.Context) error { n++; return errBad })
	if !errors.Is(err, errBad) || n != 1 {
		t.Fatalf("permanent: %v after %d calls", err, n)
	}

	n = 0
	err = l.Do(context.Background(), func(context.Context) error { n++; return backoff.Permanent(errFlaky) })
	if err != errFlaky || n != 1 {
		t.Fatalf("backoff.Permanent: %v after %d calls", err, n)
	}

	n = 0
	gaveUp := errors.New("gave up")
	l.GiveUp = func(err error, r *Retrier) error {
		if r.Attempts() != 5 {
			t.Errorf("gave up after %d attempts", r.Attempts())
		}
		return errors.Join(gaveUp, err)
	}
	err = l.Do(context.Background(), func(context.Context) error { n++; return errFlaky })
	if !errors.Is(err, gaveUp) || !errors.Is(err, errFlaky) || n != 5 {
		t.Fatalf("budget: %v after %d calls", err, n)
	}

	cause := errors.New("stopped by the caller")
	ctx, cancel := context.WithCancelCause(context.Background())
	l.Options = Options{Initial: time.Hour, Max: time.Hour}
	err = l.Do(ctx, func(context.Context) error { cancel(cause); return errFlaky })
	if !errors.Is(err, cause) {
		t.Fatalf("cancelled: %v", err)
	}
}
