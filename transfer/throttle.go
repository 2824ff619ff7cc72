package transfer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Throttle is the node-wide bandwidth budget: one token bucket in bytes per
// second, shared by peer and snapshot bytes, sent and received. A nil
// *Throttle, or a rate of 0, is unlimited. It is safe for concurrent use and
// its rate can be changed while transfers wait on it: waiters re-reserve at
// the new rate at once.
type Throttle struct {
	mu      sync.Mutex    // serialises SetRate
	changed chan struct{} // closed and replaced by SetRate; guarded by mu
	lim     *rate.Limiter
	bps     atomic.Int64
	waited  atomic.Int64 // nanoseconds, all callers
}

// Burst bounds: the bucket holds about 100ms of the rate, at least
// minBurst (so small rates still pass a protocol message without splitting
// it into slivers) and at most maxBurst (so a fast rate does not let a long
// burst through after an idle period).
const (
	minBurst = 32 << 10
	maxBurst = 4 << 20
)

// NewThrottle returns a throttle of bytesPerSec (0 or less: unlimited).
func NewThrottle(bytesPerSec int64) *Throttle {
	t := &Throttle{lim: rate.NewLimiter(rate.Inf, maxBurst), changed: make(chan struct{})}
	t.SetRate(bytesPerSec)
	return t
}

func burstFor(bps int64) int {
	return int(min(max(bps/10, minBurst), maxBurst))
}

// SetRate changes the rate (bytes per second; 0 or less: unlimited).
// Transfers waiting on the throttle pick it up with their next piece.
func (t *Throttle) SetRate(bytesPerSec int64) {
	if t == nil {
		return
	}
	bytesPerSec = max(bytesPerSec, 0)
	t.mu.Lock()
	defer t.mu.Unlock()
	if bytesPerSec == 0 {
		t.lim.SetLimit(rate.Inf)
	} else {
		t.lim.SetBurst(burstFor(bytesPerSec))
		t.lim.SetLimit(rate.Limit(bytesPerSec))
	}
	t.bps.Store(bytesPerSec)
	close(t.changed)
	t.changed = make(chan struct{})
}

// Rate is the current rate in bytes per second; 0 means unlimited.
func (t *Throttle) Rate() int64 {
	if t == nil {
		return 0
	}
	return t.bps.Load()
}

// WaitN blocks until n bytes may pass and returns how long it waited (for
// throttle-time progress). Amounts larger than the bucket are split into
// pieces of at most one burst. It returns early with an error when ctx ends,
// or at once when ctx's deadline comes before the wait would end, together
// with the time waited so far.
func (t *Throttle) WaitN(ctx context.Context, n int) (time.Duration, error) {
	if t == nil || n <= 0 || t.bps.Load() == 0 {
		return 0, nil
	}
	start := time.Now()
	err := t.wait(ctx, n)
	d := time.Since(start)
	t.waited.Add(int64(d))
	return d, err
}

func (t *Throttle) wait(ctx context.Context, n int) error {
	for n > 0 {
		if t.bps.Load() == 0 {
			return nil
		}
		t.mu.Lock()
		changed := t.changed
		t.mu.Unlock()
		step := min(n, t.lim.Burst())
		r := t.lim.ReserveN(time.Now(), step)
		if !r.OK() {
			continue // the burst shrank under us (SetRate): split anew
		}
		d := r.Delay()
		if d == 0 {
			n -= step
			continue
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			r.Cancel()
			return fmt.Errorf("transfer: throttle wait of %v would pass the deadline: %w", d, context.DeadlineExceeded)
		}
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
			n -= step
		case <-changed:
			timer.Stop()
			r.Cancel() // reserve again at the new rate
		case <-ctx.Done():
			timer.Stop()
			r.Cancel()
			return context.Cause(ctx)
		}
	}
	return nil
}

// Waited is the total time all callers spent in WaitN.
func (t *Throttle) Waited() time.Duration {
	if t == nil {
		return 0
	}
	return time.Duration(t.waited.Load())
}
