package recovery

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/recoverd/recoverd/transfer"
)

// callSource runs a unary call to the source, retrying transient errors
// (transfer.IsTransient: the source restarting, a connection cut, a source
// that does not answer within the per-call deadline) with exponential
// backoff until the node's retry budget (Config.Fetch.Retry) passes
// without success, as file and op streams do. Each attempt is bounded by
// the idle timeout (Config.Fetch.IdleTimeout, default 30s): a call on a
// connection that went silent must not wait for keepalive to notice.
func (a *attempt) callSource(ctx context.Context, what string, call func(ctx context.Context) error) error {
	timeout := a.m.cfg.Fetch.IdleTimeout
	if timeout == 0 {
		timeout = 30 * time.Second // transfer's default; negative disables it
	}
	return a.callSourceWithin(ctx, what, timeout, call)
}

// callSourceWithin is callSource with a deadline of its own per attempt;
// timeout <= 0 sets none (keepalive still drops a dead connection).
func (a *attempt) callSourceWithin(ctx context.Context, what string, timeout time.Duration, call func(ctx context.Context) error) error {
	pol := a.m.cfg.Fetch.Retry
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = 200*time.Millisecond, 10*time.Second, 2*time.Minute
	if pol.Initial > 0 {
		bo.InitialInterval = pol.Initial
	}
	if pol.Max > 0 {
		bo.MaxInterval = pol.Max
	}
	if pol.MaxElapsed > 0 {
		bo.MaxElapsedTime = pol.MaxElapsed
	}
	bo.Reset()
	for tries := 1; ; tries++ {
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			cctx, cancel = context.WithTimeout(ctx, timeout)
		}
		err := call(cctx)
		cancel()
		if err == nil || ctx.Err() != nil || !transfer.IsTransient(err) {
			return err
		}
		d := bo.NextBackOff()
		if d == backoff.Stop || (pol.MaxRetries > 0 && tries > pol.MaxRetries) {
			return fmt.Errorf("%w after %d attempts: %w", transfer.ErrRetriesExhausted, tries, err)
		}
		a.m.cfg.Metrics.retries.WithLabelValues("source_call").Inc()
		a.log.Info("call to the source failed; retrying", "call", what, "retry_in", d.Round(time.Millisecond), "error", err)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
