package recovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/transfer"
)

// What a recovery holds on its source lives under a TTL: the commit pin
// and the retention lease. Both are kept alive by transfer.KeepAlive for
// as long as the attempt that took them runs, whatever it is doing (files
// from the peer, downloads from the repository, ops), so that a recovery
// may last any multiple of their TTLs.

// holdPin makes pin the attempt's commit pin, journals it (a restart
// releases it) and keeps it alive in the background until dropPin. A pin
// the source says is gone is left to pinForFallback (a fallback needs the
// commit) or to the file transfers, which fail with ErrPinNotFound and
// re-plan.
func (a *attempt) holdPin(ctx context.Context, pin transfer.Pin) {
	a.pin = pin
	a.r.update(func(s *State) { s.pinID = pin.ID })
	if s, _ := a.r.State(); a.r.onStage != nil {
		a.r.onStage(s) // journal the pin: a restart releases it
	}
	kctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := transfer.KeepPin(kctx, a.client, pin, func(err error, expiresIn time.Duration) {
			a.m.cfg.Metrics.retries.WithLabelValues("pin_renewal").Inc()
			a.log.Warn("commit pin renewal failed; retrying", "pin", pin.ID, "expires_in", expiresIn.Round(time.Millisecond), "error", err)
		})
		if err != nil {
			a.log.Warn("the source no longer holds the commit pin", "pin", pin.ID, "error", err)
		}
	}()
	a.unpin = func() { stop(); <-done }
}

// dropPin stops keeping the attempt's pin and releases it.
func (a *attempt) dropPin(ctx context.Context) {
	if a.unpin == nil {
		return
	}
	a.unpin()
	a.unpin = nil
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := transfer.ReleasePin(rctx, a.client, a.pin.ID); err != nil {
		a.log.Warn("could not release the commit pin; it expires on the source", "pin", a.pin.ID, "error", err)
	}
}

// pinForFallback makes sure that the source still holds the commit the
// fallback plan was computed from, before the fallback moves a byte: the
// pin is renewed and, when the source lost it (it restarted, or renewals
// failed for a whole TTL), taken again. A new pin of the same commit
// serves the fallback; one of a newer commit does not (the plan's files
// may be gone), and the recovery re-plans.
func (a *attempt) pinForFallback(ctx context.Context) error {
	err := a.callSource(ctx, "renew the commit pin", func(ctx context.Context) error {
		_, err := transfer.RenewPin(ctx, a.client, a.pin.ID)
		return err
	})
	if err == nil || !errors.Is(err, transfer.ErrPinNotFound) {
		return err
	}
	old := a.pin
	a.log.Warn("the source lost the commit pin; pinning its commit again for the fallback", "pin", old.ID, "error", err)
	pin, _, err := a.pinSource(ctx)
	if err != nil {
		return err
	}
	a.dropPin(ctx)
	a.holdPin(ctx, pin)
	if pin.Generation != old.Generation {
		return &replanError{cause: "pin_lost", err: fmt.Errorf("%w: the source lost pin %s of commit generation %d and now serves generation %d",
			transfer.ErrPinNotFound, old.ID, old.Generation, pin.Generation)}
	}
	return nil
}

// keepLease keeps the retention lease alive (transfer.KeepAlive: renewed
// at a third of its TTL, a failed renewal retried, faster, until the
// lease would have expired). When the source says the lease is gone, or
// renewals failed until it expired, the attempt is cancelled with
// errLeaseLost so that it re-plans instead of trusting history that may be
// gone.
func (a *attempt) keepLease(ctx context.Context, lost context.CancelCauseFunc, l transfer.Lease) {
	renew := func(ctx context.Context) (time.Duration, error) {
		nl, err := transfer.RenewLease(ctx, a.client, a.shard, l.ID, seqno.Unassigned)
		return nl.TTL, err
	}
	gone := func(err error) bool { return errors.Is(err, seqno.ErrLeaseLost) }
	err := transfer.KeepAlive(ctx, l.TTL, renew, gone, func(err error, expiresIn time.Duration) {
		a.m.cfg.Metrics.retries.WithLabelValues("lease_renewal").Inc()
		a.log.Warn("lease renewal failed; retrying until it would expire", "expires_in", expiresIn.Round(time.Millisecond), "error", err)
	})
	if err != nil {
		lost(fmt.Errorf("%w: %v", errLeaseLost, err))
	}
}
