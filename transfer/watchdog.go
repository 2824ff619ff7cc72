package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recoverd/recoverd/api/rpcerr"
)

// watchdog cancels a stream that delivers nothing for its timeout: a
// blackholed connection or a hung peer must not hold a transfer forever.
// Armed around every wait on the network, disarmed around local work
// (throttle, disk) so that only the peer's silence counts.
type watchdog struct {
	t *time.Timer
	d time.Duration
}

func newWatchdog(d time.Duration, cancel context.CancelCauseFunc) *watchdog {
	if d <= 0 {
		return &watchdog{}
	}
	t := time.AfterFunc(time.Hour, func() { cancel(ErrIdle) })
	t.Stop()
	return &watchdog{t: t, d: d}
}

func (w *watchdog) arm() {
	if w.t != nil {
		w.t.Reset(w.d)
	}
}

func (w *watchdog) disarm() {
	if w.t != nil {
		w.t.Stop()
	}
}

// streamErr names the cause of a failed stream call: the watchdog's
// ErrIdle, or the peer's status as a rpcerr.RemoteError.
func streamErr(sctx context.Context, idle time.Duration, err error) error {
	if cause := context.Cause(sctx); errors.Is(cause, ErrIdle) {
		return fmt.Errorf("%w: nothing received for %v (%v)", ErrIdle, idle, err)
	}
	return rpcerr.FromStatus(err)
}
