package recovery

import (
	"context"
	"fmt"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/transfer"
)

// stageOps fetches the plan's ops and stages them to be published with the
// files.
func (a *attempt) stageOps(ctx context.Context, p planner.Plan) error {
	opts := a.opsOptions()
	res, err := transfer.FetchOps(ctx, a.client, a.shard, p.Ops, p.Commit.HistoryUUID, func(ops []engine.Op) error {
		if err := a.st.AppendOps(ctx, ops); err != nil {
			return err
		}
		a.moved.addOps(ops)
		a.stagedOps += int64(len(ops))
		a.r.addOps(0, int64(len(ops)))
		return nil
	}, opts)
	if err != nil {
		return fmt.Errorf("fetch ops %v from the source: %w", p.Ops, err)
	}
	a.moved.opsFetched(p.Ops, res)
	return nil
}

func (a *attempt) opsOptions() transfer.OpsOptions {
	opts := a.m.cfg.Ops
	opts.Sum = a.m.cfg.VerifyDigest == DigestAuto // for checkStreamed
	opts.Throttle = a.m.cfg.Throttle
	opts.OnThrottle = a.throttled
	opts.OnResume = func(next seqno.SeqNo, cause error) {
		a.r.addResume()
		a.m.cfg.Metrics.retries.WithLabelValues("ops_stream").Inc()
		a.log.Info("resuming op stream", "at", next, "cause", cause)
	}
	return opts
}

// catchUp replays live the ops the source holds above done (the last seqno
// already replayed or staged), until the source has nothing newer, then
// flushes the target and compares it with the source. counted is the last
// seqno already counted in the ops total.
func (a *attempt) catchUp(ctx context.Context, history string, done, counted seqno.SeqNo) error {
	opts := a.opsOptions()
	for round := 0; round < 20; round++ {
		var info transfer.ShardInfo
		err := a.callSource(ctx, "ask the source for new ops", func(ctx context.Context) error {
			var err error
			info, err = transfer.GetShardInfo(ctx, a.client, a.shard)
			return err
		})
		if err != nil {
			return fmt.Errorf("ask the source for new ops: %w", err)
		}
		if info.Meta.Commit.HistoryUUID != history {
			return fmt.Errorf("the source's history changed to %s during the recovery: %w", info.Meta.Commit.HistoryUUID, transfer.ErrHistoryMismatch)
		}
		to := info.Seq.MaxSeqNo
		if to <= done {
			break
		}
		if to > counted {
			a.r.addOps(int64(to-counted), 0)
			counted = to
		}
		rng := seqno.Range{From: done + 1, To: to}
		res, err := transfer.FetchOps(ctx, a.client, a.shard, rng, history, func(ops []engine.Op) error {
			if err := a.target.Apply(ctx, ops); err != nil {
				return err
			}
			a.moved.addOps(ops)
			a.r.addOps(0, int64(len(ops)))
			a.m.cfg.Metrics.opsReplayed.Add(float64(len(ops)))
			return nil
		}, opts)
		if err != nil {
			return fmt.Errorf("replay ops %v from the source: %w", rng, err)
		}
		a.moved.opsFetched(rng, res)
		done = to
	}
	// The copy now holds the source's history: it takes the source's term
	// (the ops it applied never raise it).
	if err := a.target.AdoptTerm(ctx, a.sourceTerm); err != nil {
		return fmt.Errorf("take the source's primary term %d: %w", a.sourceTerm, err)
	}
	if err := a.target.Flush(ctx); err != nil {
		return fmt.Errorf("commit the replayed ops: %w", err)
	}
	return a.check(ctx)
}
