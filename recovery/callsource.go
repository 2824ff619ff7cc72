package recovery

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/transfer"
)

// callSource runs a unary call to the source, retrying transient errors
// (retry.IsTransient: the source restarting, a connection cut, a source
// that does not answer within the per-call deadline) under the node's
// retry policy (Config.Fetch.Retry, retry.Peer's where unset), as file and
// op streams do. Each attempt is bounded by the idle timeout
// (Config.Fetch.IdleTimeout, default 30s): a call on a connection that
// went silent must not wait for keepalive to notice.
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
	loop := retry.Loop{
		Options: retry.Peer.With(a.m.cfg.Fetch.Retry),
		OnRetry: func(err error, d time.Duration) {
			a.m.cfg.Metrics.retries.WithLabelValues("source_call").Inc()
			a.log.Info("call to the source failed; retrying", "call", what, "retry_in", d.Round(time.Millisecond), "error", err)
		},
		GiveUp: func(err error, r *retry.Retrier) error {
			return fmt.Errorf("%w after %d attempts: %w", transfer.ErrRetriesExhausted, r.Attempts(), err)
		},
	}
	return loop.Do(ctx, func(actx context.Context) error {
		cctx, cancel := actx, context.CancelFunc(func() {})
		if timeout > 0 {
			cctx, cancel = context.WithTimeout(actx, timeout)
		}
		err := call(cctx)
		cancel()
		if err != nil && actx.Err() != nil {
			return backoff.Permanent(err) // the call's own error says how it ended
		}
		return err
	})
}
