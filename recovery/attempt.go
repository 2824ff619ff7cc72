package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/staging"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// attempt holds what one planning attempt of a recovery uses.
type attempt struct {
	m     *Manager
	r     *Recovery
	id    string
	shard engine.ShardID
	// target is the copy the recovery writes into (Engine.OpenTarget);
	// view the copy the planner reads: the target, or for planning alone
	// the shard as it is (Engine.Shard), nil when the node holds none.
	target engine.Target
	view   engine.Reader
	client pb.PeerServiceClient
	pin    transfer.Pin
	unpin  func() // stops keeping pin alive (holdPin)
	// noSnapshot says why later plans of this recovery must not use the
	// repository: a snapshot plan of an earlier attempt failed on it.
	noSnapshot error
	// allowDataLoss is the request's (planner.Settings.AllowDataLoss).
	allowDataLoss bool
	// sourceTerm is the source's primary term: the recovered copy takes
	// it, whatever term wrote the files it got (a snapshot may be older).
	sourceTerm uint64
	log        *slog.Logger
	// st is the recovery's staging on the target (the engine's: it stages
	// the ops and publishes), area the files this process writes into its
	// directory (internal/staging). They outlive an attempt that ends in
	// a re-plan, so the next attempt keeps the files (and checked
	// prefixes) already received, and a stop of the node (suspended, they
	// resume at the next start); they are removed when the recovery ends
	// unpublished and before a fallback.
	st   engine.Staging
	area *staging.Area
	// stagedOps counts the ops staged since the staging's ops were last
	// discarded.
	stagedOps int64
	// moved is what the plan being run moved, as hashed while it streamed
	// (the streamed check).
	moved *moved
}

// startStaging opens the recovery's staging on the target, and the area
// of the files in it: what this recovery staged before the node
// restarted is its own, for Keep to check.
func (a *attempt) startStaging(ctx context.Context) error {
	st, err := a.target.StartStaging(ctx, a.id)
	if err != nil {
		return err
	}
	area, err := staging.Open(a.id, st.Dir(), staging.Options{})
	if err != nil {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		return errors.Join(err, st.Suspend(cctx))
	}
	a.st, a.area, a.stagedOps = st, area, 0
	return nil
}

// prepareStaging returns the recovery's staging area for plan p, created
// on first use. What an earlier attempt, or an earlier process of this
// node, staged for the files p lists stays, checked (staging Area.Keep);
// the rest goes, and so do the staged ops: p's ops are fetched.
func (a *attempt) prepareStaging(ctx context.Context, p planner.Plan) (*staging.Area, error) {
	if a.st == nil {
		if err := a.startStaging(ctx); err != nil {
			return nil, err
		}
	}
	if err := a.st.DiscardOps(ctx); err != nil {
		return nil, err
	}
	a.stagedOps = 0
	files, n, err := a.area.Keep(append(append([]engine.FileMeta(nil), p.FromPeer...), p.FromSnapshot...))
	if err != nil {
		return nil, err
	}
	if files > 0 {
		a.log.Info("keeping what was staged before (an earlier attempt, or before the node restarted)", "files", files, "bytes", n)
	}
	return a.area, nil
}

// cleanupContext is the context of what a recovery does as it ends, when
// its own context may be cancelled already: the engine is still asked.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), engineCallTimeout)
}

// suspendStaging keeps the staging for the next start of the node.
func (a *attempt) suspendStaging(ctx context.Context) {
	if a.st == nil {
		return
	}
	a.area.Suspend()
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := a.st.Suspend(ctx); err != nil {
		a.log.Error("could not suspend the staging", "error", err)
	}
	a.st, a.area = nil, nil
}

// dropStaging removes the staging, if any.
func (a *attempt) dropStaging(ctx context.Context) {
	if a.st == nil {
		return
	}
	a.area.Close()
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := a.st.Abandon(ctx); err != nil {
		a.log.Error("could not remove the staging directory; the next start removes it", "error", err)
	}
	a.st, a.area = nil, nil
}

// pinPlanAndRun runs one attempt: it pins the source's commit, plans on
// it, checks the space, takes the retention lease and runs the plan while
// the lease is kept alive (a dry run stops once planned). A lost lease,
// pin or op history comes back as a replanError.
func (a *attempt) pinPlanAndRun(ctx context.Context, req StartRequest, useSnapshots bool, unreadable string) error {
	r := a.r
	r.setStage(StagePlan)
	pin, info, err := a.pinSource(ctx)
	if err != nil {
		return err
	}
	a.sourceTerm = info.PrimaryTerm
	a.holdPin(ctx, pin)
	defer a.dropPin(ctx)
	in, manifest, err := a.input(ctx, info, useSnapshots, unreadable)
	if err != nil {
		return err
	}
	p := planner.Compute(in)
	if err := p.Validate(in); err != nil {
		return fmt.Errorf("the planner produced an invalid plan (a bug, please report it): %w", err)
	}
	r.setPlan(p)
	if !req.DryRun && r.countStart() {
		a.m.cfg.Metrics.started.WithLabelValues(string(p.Kind)).Inc()
	}
	a.log.Info("planned", "kind", p.Kind, "from_peer_bytes", p.BytesFromPeer, "from_repo_bytes", p.BytesFromRepo,
		"reused_bytes", p.BytesReused, "ops", p.Ops.String(), "reasons", strings.Join(p.Reasons, "; "))
	if p.Refused() {
		return fmt.Errorf("recovery refused: %s", strings.Join(p.Reasons, "; "))
	}
	if err := a.checkSpace(p); err != nil {
		return fmt.Errorf("recovery refused: %w", err)
	}
	if req.DryRun {
		return nil
	}
	lease, err := a.acquireLease(ctx, p.Lease.RetainingSeqNo)
	if err != nil {
		return err
	}
	lctx, lost := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.keepLease(lctx, lost, lease)
	}()
	err = a.runPlan(lctx, p, manifest)
	lost(nil)
	wg.Wait()
	// A recovery that succeeded hands its lease over to the copy (its
	// keeper stopped: the source holds it from now on); otherwise, or
	// when the source cannot take it, the lease is released.
	handed := err == nil && context.Cause(lctx) == context.Canceled && a.target != nil && a.handOff(ctx, lease)
	if !handed {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if rerr := transfer.ReleaseLease(rctx, a.client, a.shard, lease.ID); rerr != nil {
			a.log.Warn("could not release the retention lease; it expires on the source", "lease", lease.ID, "error", rerr)
		}
		cancel()
	}
	if cause := context.Cause(lctx); ctx.Err() == nil && errors.Is(cause, seqno.ErrLeaseLost) {
		return &replanError{cause: "lease_lost", err: cause}
	}
	if err != nil && ctx.Err() == nil && (errors.Is(err, seqno.ErrCompacted) || errors.Is(err, transfer.ErrPinNotFound)) {
		return &replanError{cause: causeOf(err), err: err}
	}
	return err
}

// input gathers what the planner needs. The repository's answer is
// classified by SnapshotInput: none, disabled, unavailable (never read as
// "no snapshot").
func (a *attempt) input(ctx context.Context, info transfer.ShardInfo, useSnapshots bool, unreadable string) (planner.Input, *snapshot.Manifest, error) {
	m := a.m
	var leases []seqno.RetentionLease
	for _, l := range info.Leases {
		leases = append(leases, l.RetentionLease)
	}
	v := m.cfg.Engine.Version()
	target := planner.Target{Unreadable: unreadable, Empty: unreadable == "", Version: v.Writer, MaxFormat: v.MaxFormat}
	if a.view != nil {
		ti, err := a.view.Info(ctx)
		if err != nil {
			return planner.Input{}, nil, fmt.Errorf("read the target copy: %w", err)
		}
		target.Meta = ti.Meta
		target.Empty = len(target.Meta.Files) == 0 && target.Meta.Commit.MaxSeqNo == seqno.NoOpsPerformed
	}
	in := planner.Input{
		Source: planner.Source{Meta: info.Meta, MaxSeqNo: info.Seq.MaxSeqNo, Retained: info.Retained, Leases: leases,
			OpBytes: info.AvgOpBytes, Version: info.WriterVersion, MaxFormat: info.MaxFormat},
		Target:   target,
		Settings: m.cfg.Settings,
	}
	in.Settings.UseSnapshots = useSnapshots
	in.Settings.AllowDataLoss = a.allowDataLoss
	var manifest *snapshot.Manifest
	switch {
	case m.cfg.Repo == nil:
		in.Snapshot.State = planner.SnapshotDisabled
	case !useSnapshots:
		in.Snapshot.State = planner.SnapshotNone
	case a.noSnapshot != nil:
		in.Snapshot.State = planner.SnapshotUnavailable
		in.Snapshot.Err = "an earlier plan of this recovery failed on it: " + a.noSnapshot.Error()
	default:
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		in.Snapshot, manifest = SnapshotInput(qctx, m.cfg.Repo, a.shard)
		cancel()
	}
	return in, manifest, nil
}

// acquireLease takes the recovery's retention lease on the source.
func (a *attempt) acquireLease(ctx context.Context, retaining seqno.SeqNo) (transfer.Lease, error) {
	id := leaseID(a.m.cfg.NodeID, a.id)
	var l transfer.Lease
	err := a.callSource(ctx, "take a retention lease", func(ctx context.Context) error {
		var err error
		l, err = transfer.AcquireLease(ctx, a.client, a.shard, id, retaining, holderName(a.m.cfg.NodeID, a.id))
		if errors.Is(err, seqno.ErrLeaseExists) { // ours, from an attempt that was cut short (or an answer lost)
			l, err = transfer.RenewLease(ctx, a.client, a.shard, id, retaining)
		}
		return err
	})
	if errors.Is(err, seqno.ErrCompacted) || errors.Is(err, seqno.ErrLeaseLost) {
		return l, &replanError{cause: causeOf(err), err: err}
	}
	if err != nil {
		return l, fmt.Errorf("take a retention lease on the source: %w", err)
	}
	return l, nil
}

// runPlan runs a plan, falling back to its peer plan when a snapshot
// download fails.
func (a *attempt) runPlan(ctx context.Context, p planner.Plan, manifest *snapshot.Manifest) error {
	a.moved = newMoved(p.Ops.From)
	if p.Kind == planner.KindOpsOnly {
		a.r.setStage(StageOps)
		return a.catchUp(ctx, p.Commit.HistoryUUID, p.Ops.From-1, p.Ops.To)
	}
	err := a.fetchVerifyPublish(ctx, p, manifest)
	var sf *snapshotFailure
	if errors.As(err, &sf) && p.Fallback != nil && ctx.Err() == nil {
		a.noSnapshot = sf
		a.r.addFallback(Fallback{Time: time.Now(), Cause: sf.Error(), From: p.Kind, To: p.Fallback.Kind})
		a.m.cfg.Metrics.fallbacks.WithLabelValues(fallbackCause(sf.err)).Inc()
		a.log.Warn("snapshot plan failed; falling back to the peer plan", "cause", sf)
		a.dropStaging(ctx) // what the snapshot plan staged is not trusted
		if err := a.pinForFallback(ctx); err != nil {
			return fmt.Errorf("fall back to the peer plan: %w", err)
		}
		p = *p.Fallback
		a.r.setPlan(p)
		a.moved = newMoved(p.Ops.From)
		err = a.fetchVerifyPublish(ctx, p, nil)
	}
	if err != nil {
		return err
	}
	a.r.setStage(StageOps)
	return a.catchUp(ctx, p.Commit.HistoryUUID, p.Ops.To, p.Ops.To)
}
