package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// runInSlot runs a launched recovery to its end: it waits for a node slot
// (the queued stage), runs the recovery's attempts in it, gives the slot
// back and records how the recovery ended; a node stopping pauses it
// instead, for the next start to resume.
func (m *Manager) runInSlot(ctx context.Context, r *Recovery, req StartRequest, useSnapshots bool) {
	defer close(r.done)
	log := m.cfg.Logger.With("recovery", req.ID, "shard", req.Shard.String(), "source", req.Source)
	r.slot = &nodeSlot{m: m, r: r}
	if err := r.slot.acquire(ctx); err != nil {
		if stopping(ctx) {
			m.pause(r)
			return
		}
		m.end(r, req, log, err)
		return
	}
	err := m.runAttempts(ctx, r, req, useSnapshots, log)
	r.slot.release()
	if err != nil && stopping(ctx) {
		log.Info("recovery paused: the node is stopping; it resumes when the node starts again")
		m.pause(r)
		return
	}
	if ctx.Err() != nil && !stopping(ctx) {
		// A cancel that lands in a call to the source ends that call with
		// "context canceled": the recovery ends by the cancel's cause.
		if cause := context.Cause(ctx); err == nil || errors.Is(cause, ErrCancelled) {
			err = cause
		}
	}
	m.end(r, req, log, err)
}

// end records the final stage.
func (m *Manager) end(r *Recovery, req StartRequest, log *slog.Logger, err error) {
	stage := StageDone
	switch {
	case errors.Is(err, ErrCancelled):
		stage = StageCancelled
	case err != nil:
		stage = StageFailed
	}
	if err != nil {
		r.update(func(s *State) { s.Error = err.Error() })
	}
	// The shard is given back before the final stage shows: whoever sees
	// the recovery done may write to the shard at once.
	m.unregister(r, req.Shard, log)
	r.setStage(stage)
	s, _ := r.State()
	kind := "none"
	if s.Plan != nil {
		kind = string(s.Plan.Kind)
	}
	if r.countStart() { // it ended before it was planned
		m.cfg.Metrics.started.WithLabelValues(kind).Inc()
	}
	m.cfg.Metrics.observeFinished(kind, stage, s.End.Sub(s.Start))
	if stage == StageDone {
		log.Info("recovery done", "kind", kind, "duration", s.End.Sub(s.Start).Round(time.Millisecond),
			"from_peer_bytes", s.Totals.FromPeer.RecoveredBytes, "from_snapshot_bytes", s.Totals.FromSnapshot.RecoveredBytes,
			"reused_bytes", s.Totals.Reused.Bytes, "ops", s.OpsReplayed)
	} else {
		log.Warn("recovery "+string(stage), "kind", kind, "error", err)
	}
	m.forgetAfter(r, req.ID, m.cfg.KeepFinished)
}

// runAttempts connects to the source, checks that it holds the shard,
// opens the target and its staging (a dry run creates and moves nothing),
// then runs attempts until one ends without asking for a re-plan, at most
// Config.MaxReplans re-plans. Explain calls it with a dry-run request.
func (m *Manager) runAttempts(ctx context.Context, r *Recovery, req StartRequest, useSnapshots bool, log *slog.Logger) error {
	ctx = snapshot.CountRequests(ctx, snapshot.KindRecovery, &r.requests)
	r.setStage(StageInit)
	client, err := m.cfg.Dial(ctx, req.Source)
	if err != nil {
		return fmt.Errorf("connect to source %s: %w", req.Source, err)
	}
	a := &attempt{m: m, r: r, id: req.ID, shard: req.Shard, client: client, log: log, allowDataLoss: req.AllowDataLoss}
	if !req.DryRun {
		// Nothing is created on this node for a shard the source does not
		// hold (a wrong shard or source address).
		err := a.callSource(ctx, "ask the source about the shard", func(ctx context.Context) error {
			_, err := transfer.GetShardInfo(ctx, client, req.Shard)
			return err
		})
		if errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("the source %s does not hold shard %s; nothing was changed on this node: %w", req.Source, req.Shard, err)
		}
		if err != nil {
			return fmt.Errorf("ask the source %s about shard %s: %w", req.Source, req.Shard, err)
		}
	}
	var unreadable string
	if req.DryRun {
		// Plan on what is there, changing nothing: no shard is created or
		// moved aside, and the planner sees the target's last commit.
		var sh engine.Shard
		sh, err = m.cfg.Engine.Shard(ctx, req.Shard)
		switch {
		case errors.Is(err, engine.ErrNotFound):
			err = nil
		case err != nil:
			unreadable, err = err.Error(), nil
		default:
			a.view = sh
		}
	} else {
		a.target, unreadable, err = m.cfg.Engine.OpenTarget(ctx, req.Shard)
		if err != nil {
			return fmt.Errorf("open target shard %s: %w", req.Shard, err)
		}
		a.view = a.target
		if unreadable != "" {
			log.Warn("target shard was unreadable; moved aside and recovering into an empty one", "cause", unreadable)
		}
		// The target's commit must hold all it has, for the planner to see
		// it (a shard this recovery creates has none until it publishes).
		ti, err := a.target.Info(ctx)
		if err != nil {
			return fmt.Errorf("read target shard %s: %w", req.Shard, err)
		}
		if ti.Committed {
			if err := a.target.Flush(ctx); err != nil {
				return fmt.Errorf("flush target shard %s: %w", req.Shard, err)
			}
		}
		// A shard created by the recovery and never published goes, unless
		// the node stops: the recovery resumes into it.
		defer func() {
			if stopping(ctx) {
				return
			}
			cctx, cancel := cleanupContext(ctx)
			defer cancel()
			if err := m.cfg.Engine.RemoveUncommitted(cctx, req.Shard); err != nil {
				log.Error("could not remove the shard this recovery created and did not publish", "error", err)
			}
		}()
		// What this recovery staged before the node restarted is its own.
		if err := a.startStaging(ctx); err != nil {
			return fmt.Errorf("staging on target shard %s: %w", req.Shard, err)
		}
	}
	defer func() { // unless published: then there is none
		if stopping(ctx) {
			a.suspendStaging(ctx)
		} else {
			a.dropStaging(ctx)
		}
	}()
	for replans := 0; ; replans++ {
		err := a.pinPlanAndRun(ctx, req, useSnapshots, unreadable)
		var rp *replanError
		if !errors.As(err, &rp) || ctx.Err() != nil {
			return err
		}
		if replans >= m.cfg.MaxReplans {
			return fmt.Errorf("gave up after %d re-plans: %w", replans, err)
		}
		m.cfg.Metrics.replans.WithLabelValues(rp.cause).Inc()
		r.update(func(s *State) { s.Replans++ })
		log.Warn("re-planning", "cause", rp.cause, "error", rp.err)
		unreadable = ""
	}
}
