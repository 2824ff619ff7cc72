package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/sync/errgroup"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// replanError asks for a new plan: the history the plan relied on is gone.
type replanError struct {
	cause string
	err   error
}

func (e *replanError) Error() string { return "re-plan (" + e.cause + "): " + e.err.Error() }
func (e *replanError) Unwrap() error { return e.err }

// snapshotFailure is a snapshot download that failed: the plan falls back.
type snapshotFailure struct {
	file string
	err  error
}

func (e *snapshotFailure) Error() string {
	if e.file == "" {
		return "snapshot: " + e.err.Error()
	}
	return "snapshot file " + e.file + ": " + e.err.Error()
}
func (e *snapshotFailure) Unwrap() error { return e.err }

var errLeaseLost = fmt.Errorf("recovery: the retention lease on the source was lost: %w", seqno.ErrLeaseLost)

// attempt holds what one planning attempt of a recovery uses.
type attempt struct {
	m      *Manager
	r      *Recovery
	id     string
	shard  shardstore.ShardID
	target *shardstore.Shard
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
	// st is the recovery's staging. It outlives an attempt that ends in a
	// re-plan, so the next attempt keeps the files (and checked prefixes)
	// already received, and a stop of the node (suspended, it resumes at
	// the next start); it is removed when the recovery ends unpublished
	// and before a fallback.
	st *shardstore.Staging
}

// staging returns the recovery's staging for plan p, created on first
// use. What an earlier attempt, or an earlier process of this node,
// staged for the files p lists stays, checked (shardstore Staging.Keep);
// the rest goes, and so do the staged ops: p's ops are fetched.
func (a *attempt) staging(p planner.Plan) (*shardstore.Staging, error) {
	if a.st == nil {
		st, err := a.target.StartStaging(a.id)
		if err != nil {
			return nil, err
		}
		a.st = st
	}
	files, n, err := a.st.Keep(append(append([]shardstore.FileMeta(nil), p.FromPeer...), p.FromSnapshot...))
	if err != nil {
		return nil, err
	}
	if files > 0 {
		a.log.Info("keeping what was staged before (an earlier attempt, or before the node restarted)", "files", files, "bytes", n)
	}
	return a.st, nil
}

// suspendStaging keeps the staging for the next start of the node.
func (a *attempt) suspendStaging() {
	if a.st == nil {
		return
	}
	if err := a.st.Suspend(); err != nil {
		a.log.Error("could not suspend the staging", "error", err)
	}
	a.st = nil
}

// dropStaging removes the staging, if any.
func (a *attempt) dropStaging() {
	if a.st == nil {
		return
	}
	if err := a.st.Abandon(); err != nil {
		a.log.Error("could not remove the staging directory; the next start removes it", "error", err)
	}
	a.st = nil
}

func (m *Manager) execute(ctx context.Context, r *Recovery, req StartRequest, useSnapshots bool) {
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
	err := m.run(ctx, r, req, useSnapshots, log)
	r.slot.release()
	if err != nil && stopping(ctx) {
		log.Info("recovery paused: the node is stopping; it resumes when the node starts again")
		m.pause(r)
		return
	}
	if err == nil && ctx.Err() != nil && !stopping(ctx) {
		err = context.Cause(ctx)
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
		r.update(func(s *Snapshot) { s.Error = err.Error() })
	}
	r.setStage(stage)
	s, _ := r.Snapshot()
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
	m.finish(r, req.Shard, req.ID)
}

func (m *Manager) run(ctx context.Context, r *Recovery, req StartRequest, useSnapshots bool, log *slog.Logger) error {
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
		if errors.Is(err, shardstore.ErrNotFound) {
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
		a.target, err = m.cfg.Targets.Shard(req.Shard)
		switch {
		case errors.Is(err, shardstore.ErrNotFound):
			a.target, err = nil, nil
		case err != nil:
			a.target, unreadable, err = nil, err.Error(), nil
		}
	} else {
		a.target, unreadable, err = m.cfg.Targets.OpenTarget(req.Shard)
		if err != nil {
			return fmt.Errorf("open target shard %s: %w", req.Shard, err)
		}
		if unreadable != "" {
			log.Warn("target shard was unreadable; moved aside and recovering into an empty one", "cause", unreadable)
		}
		// The target's commit must hold all it has, for the planner to see
		// it (a shard this recovery creates has none until it publishes).
		if a.target.Committed() {
			if err := a.target.Flush(); err != nil {
				return fmt.Errorf("flush target shard %s: %w", req.Shard, err)
			}
		}
		// A shard created by the recovery and never published goes, unless
		// the node stops: the recovery resumes into it.
		defer func() {
			if stopping(ctx) {
				return
			}
			if err := m.cfg.Targets.RemoveUncommitted(req.Shard); err != nil {
				log.Error("could not remove the shard this recovery created and did not publish", "error", err)
			}
		}()
		// What this recovery staged before the node restarted is its own.
		if a.st, err = a.target.StartStaging(req.ID); err != nil {
			return fmt.Errorf("staging on target shard %s: %w", req.Shard, err)
		}
	}
	defer func() { // unless published: then there is none
		if stopping(ctx) {
			a.suspendStaging()
		} else {
			a.dropStaging()
		}
	}()
	for replans := 0; ; replans++ {
		err := a.plan(ctx, req, useSnapshots, unreadable)
		var rp *replanError
		if !errors.As(err, &rp) || ctx.Err() != nil {
			return err
		}
		if replans >= m.cfg.MaxReplans {
			return fmt.Errorf("gave up after %d re-plans: %w", replans, err)
		}
		m.cfg.Metrics.replans.WithLabelValues(rp.cause).Inc()
		r.update(func(s *Snapshot) { s.Replans++ })
		log.Warn("re-planning", "cause", rp.cause, "error", rp.err)
		unreadable = ""
	}
}

// plan runs one attempt: pin, plan, lease, execute.
func (a *attempt) plan(ctx context.Context, req StartRequest, useSnapshots bool, unreadable string) error {
	r := a.r
	r.setStage(StagePlan)
	pin, info, err := a.pinSource(ctx)
	if err != nil {
		return err
	}
	a.sourceTerm = info.PrimaryTerm
	a.holdPin(ctx, pin)
	defer a.dropPin(ctx)
	in, manifest := a.input(ctx, info, useSnapshots, unreadable)
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
	err = a.execute(lctx, p, manifest)
	lost(nil)
	wg.Wait()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	if rerr := transfer.ReleaseLease(rctx, a.client, a.shard, lease.ID); rerr != nil {
		a.log.Warn("could not release the retention lease; it expires on the source", "lease", lease.ID, "error", rerr)
	}
	cancel()
	if cause := context.Cause(lctx); ctx.Err() == nil && errors.Is(cause, seqno.ErrLeaseLost) {
		return &replanError{cause: "lease_lost", err: cause}
	}
	if err != nil && ctx.Err() == nil && (errors.Is(err, seqno.ErrCompacted) || errors.Is(err, transfer.ErrPinNotFound)) {
		return &replanError{cause: causeOf(err), err: err}
	}
	return err
}

func causeOf(err error) string {
	switch {
	case errors.Is(err, seqno.ErrCompacted):
		return "ops_compacted"
	case errors.Is(err, transfer.ErrPinNotFound):
		return "pin_lost"
	case errors.Is(err, seqno.ErrLeaseLost):
		return "lease_lost"
	}
	return "other"
}

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

// input gathers what the planner needs. The repository's answer is
// classified: none, disabled, unavailable (never read as "no snapshot").
func (a *attempt) input(ctx context.Context, info transfer.ShardInfo, useSnapshots bool, unreadable string) (planner.Input, *snapshot.Manifest) {
	m := a.m
	var leases []seqno.RetentionLease
	for _, l := range info.Leases {
		leases = append(leases, l.RetentionLease)
	}
	target := planner.Target{Unreadable: unreadable, Empty: unreadable == "",
		Version: shardstore.WriterVersion, MaxFormat: shardstore.FormatVersion}
	if a.target != nil {
		target.Meta = a.target.Metadata()
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
		man, err := snapshot.Latest(qctx, m.cfg.Repo, a.shard)
		cancel()
		switch {
		case errors.Is(err, snapshot.ErrNotFound):
			in.Snapshot.State = planner.SnapshotNone
		case err != nil:
			in.Snapshot.State, in.Snapshot.Err = planner.SnapshotUnavailable, err.Error()
		default:
			manifest = man
			in.Snapshot = planner.Snapshot{State: planner.SnapshotAvailable, ID: man.ID, Files: man.FileMetas(), Commit: man.Commit}
		}
	}
	return in, manifest
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

// execute runs a plan, falling back to its peer plan when a snapshot
// download fails.
func (a *attempt) execute(ctx context.Context, p planner.Plan, manifest *snapshot.Manifest) error {
	if p.Kind == planner.KindOpsOnly {
		a.r.setStage(StageOps)
		return a.catchUp(ctx, p.Commit.HistoryUUID, p.Ops.From-1, p.Ops.To)
	}
	err := a.files(ctx, p, manifest)
	var sf *snapshotFailure
	if errors.As(err, &sf) && p.Fallback != nil && ctx.Err() == nil {
		a.noSnapshot = sf
		a.r.addFallback(Fallback{Time: time.Now(), Cause: sf.Error(), From: p.Kind, To: p.Fallback.Kind})
		a.m.cfg.Metrics.fallbacks.WithLabelValues(fallbackCause(sf.err)).Inc()
		a.log.Warn("snapshot plan failed; falling back to the peer plan", "cause", sf)
		a.dropStaging() // what the snapshot plan staged is not trusted
		if err := a.pinForFallback(ctx); err != nil {
			return fmt.Errorf("fall back to the peer plan: %w", err)
		}
		p = *p.Fallback
		a.r.setPlan(p)
		err = a.files(ctx, p, nil)
	}
	if err != nil {
		return err
	}
	a.r.setStage(StageOps)
	return a.catchUp(ctx, p.Commit.HistoryUUID, p.Ops.To, p.Ops.To)
}

func fallbackCause(err error) string {
	switch {
	case errors.Is(err, snapshot.ErrChecksum):
		return "checksum"
	case errors.Is(err, snapshot.ErrNotFound):
		return "not_found"
	case errors.Is(err, snapshot.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	}
	return "other"
}

// files runs the files, verify and finalize stages of a file-based plan.
// Until Publish the target is untouched; on any error the staging
// directory is removed, after every transfer has returned.
func (a *attempt) files(ctx context.Context, p planner.Plan, manifest *snapshot.Manifest) error {
	a.r.setStage(StageFiles)
	st, err := a.staging(p)
	if err != nil {
		return err
	}
	// On an error the staging stays for a re-plan; run removes it when the
	// recovery ends, execute before a fallback.
	g, gctx := errgroup.WithContext(ctx)
	toPeer := a.peerFetches(gctx, g, st)
	if len(p.FromPeer) > 0 {
		toPeer(p.FromPeer)
	}
	if len(p.FromSnapshot) > 0 {
		g.Go(func() error { return a.download(gctx, p, manifest, st, toPeer) })
	}
	if !p.Ops.Empty() {
		g.Go(func() error { return a.stageOps(gctx, p, st) })
	}
	// The first error is the cause (a snapshot failure, the source's, the
	// ops'), never the cancellation it caused on the other sides.
	if err := g.Wait(); err != nil {
		return err
	}

	a.r.setStage(StageVerify)
	staged := map[string]bool{}
	for _, f := range st.Files() {
		staged[f.Name] = true
	}
	for _, f := range append(append([]shardstore.FileMeta(nil), p.FromPeer...), p.FromSnapshot...) {
		if !staged[f.Name] {
			return fmt.Errorf("file %s was not staged", f.Name)
		}
	}

	a.r.setStage(StageFinalize)
	all := make([]shardstore.FileMeta, 0, len(p.Reused)+len(p.FromSnapshot)+len(p.FromPeer))
	all = append(append(append(all, p.Reused...), p.FromSnapshot...), p.FromPeer...)
	commit := p.Commit
	commit.PrimaryTerm = max(commit.PrimaryTerm, a.sourceTerm)
	if err := st.Publish(all, commit); err != nil {
		return fmt.Errorf("publish the recovered files: %w", err)
	}
	a.st = nil // published: the staging directory is gone
	s, _ := a.r.Snapshot()
	mt := a.m.cfg.Metrics
	mt.bytes.WithLabelValues("peer").Add(float64(s.Totals.FromPeer.Bytes))
	mt.bytes.WithLabelValues("snapshot").Add(float64(s.Totals.FromSnapshot.Bytes))
	mt.bytes.WithLabelValues("reused").Add(float64(s.Totals.Reused.Bytes))
	mt.opsReplayed.Add(float64(st.StagedOps()))
	return nil
}

// fetch copies files from the source into staging.
func (a *attempt) fetch(ctx context.Context, files []shardstore.FileMeta, st *shardstore.Staging) error {
	opts := a.m.cfg.Fetch
	opts.Throttle = a.m.cfg.Throttle
	opts.OnBytes = a.r.addBytes
	opts.OnFileDone = func(f shardstore.FileMeta) { a.r.fileDone(f.Name) }
	opts.OnResume = func(file string, off int64, cause error) {
		a.r.addResume()
		a.m.cfg.Metrics.retries.WithLabelValues("peer_stream").Inc()
		a.log.Info("resuming file transfer", "file", file, "offset", off, "cause", cause)
	}
	opts.OnThrottle = a.throttled
	opts.PinKept = true // holdPin keeps it for the whole attempt
	_, err := transfer.FetchFiles(ctx, a.client, a.shard, a.pin, files, st, opts)
	if err != nil {
		return fmt.Errorf("copy files from the source: %w", err)
	}
	return nil
}

func (a *attempt) throttled(d time.Duration) {
	a.r.addThrottle(d)
	a.m.cfg.Metrics.throttleWait.Add(d.Seconds())
}

// stageOps fetches the plan's ops and stages them to be published with the
// files.
func (a *attempt) stageOps(ctx context.Context, p planner.Plan, st *shardstore.Staging) error {
	opts := a.opsOptions()
	_, err := transfer.FetchOps(ctx, a.client, a.shard, p.Ops, p.Commit.HistoryUUID, func(ops []shardstore.Op) error {
		if err := st.AppendOps(ops); err != nil {
			return err
		}
		a.r.addOps(0, int64(len(ops)))
		return nil
	}, opts)
	if err != nil {
		return fmt.Errorf("fetch ops %v from the source: %w", p.Ops, err)
	}
	return nil
}

func (a *attempt) opsOptions() transfer.OpsOptions {
	opts := a.m.cfg.Ops
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
		_, err = transfer.FetchOps(ctx, a.client, a.shard, rng, history, func(ops []shardstore.Op) error {
			if err := a.target.Apply(ctx, ops); err != nil {
				return err
			}
			a.r.addOps(0, int64(len(ops)))
			a.m.cfg.Metrics.opsReplayed.Add(float64(len(ops)))
			return nil
		}, opts)
		if err != nil {
			return fmt.Errorf("replay ops %v from the source: %w", rng, err)
		}
		done = to
	}
	// The copy now holds the source's history: it takes the source's term
	// (the ops it applied never raise it).
	a.target.AdoptTerm(a.sourceTerm)
	if err := a.target.Flush(); err != nil {
		return fmt.Errorf("commit the replayed ops: %w", err)
	}
	return a.check(ctx)
}

// check compares the recovered copy with the source: history UUID, local
// checkpoint and max seqno, and per Config.VerifyDigest the content digest
// (which reads the whole shard once on both nodes; without it the files
// stand verified by their checksums and the ops by seqno, and nothing of
// the source's shard is read). The digests are of the content at the
// seqno the copy reached (shardstore.DigestAt): the source digests its
// pinned commit and ops up to that seqno while it goes on indexing, so a
// source that indexed more meanwhile is compared all the same. A source
// that cannot (its history at that seqno compacted, or an older version)
// is compared by seqnos, and a source that indexed more is said so; a
// difference at the same seqnos fails the recovery.
func (a *attempt) check(ctx context.Context) error {
	snap, _ := a.r.Snapshot()
	digests := a.m.cfg.VerifyDigest == DigestAlways ||
		a.m.cfg.VerifyDigest == DigestAuto && (snap.Plan == nil || snap.Plan.Kind != planner.KindSnapshot)
	var (
		srcHistory string
		srcSeq     seqno.Stats
		srcAt      = seqno.Unassigned
		c          = &Check{}
		tgtErr     = make(chan error, 1)
		upTo       = a.target.Stats().Seq.MaxSeqNo
		notAt      string // why the digests could not be compared at upTo
	)
	if digests { // both nodes scan their shard at once
		go func() {
			var err error
			c.TargetDigest, _, err = a.target.DigestAt(ctx, nil, upTo)
			tgtErr <- err
		}()
	} else {
		tgtErr <- nil
	}
	err := a.callSourceWithin(ctx, "ask the source for its digest", 0, func(ctx context.Context) error {
		if digests { // a digest scans the whole shard: no deadline of ours on it
			d, err := transfer.GetShardDigest(ctx, a.client, a.shard, a.pin.ID, upTo)
			if errors.Is(err, seqno.ErrCompacted) {
				notAt, digests = err.Error(), false
			} else {
				c.SourceDigest, srcHistory, srcSeq, srcAt = d.Digest, d.HistoryUUID, d.Seq, d.UpTo
				return err
			}
		}
		info, err := transfer.GetShardInfo(ctx, a.client, a.shard)
		srcHistory, srcSeq = info.Meta.Commit.HistoryUUID, info.Seq
		return err
	})
	terr := <-tgtErr
	if digests && errors.Is(terr, seqno.ErrCompacted) { // replicated ops flushed past upTo meanwhile
		notAt, digests = terr.Error(), false
	}
	if !digests {
		c.TargetDigest, c.SourceDigest = "", ""
	} else if terr != nil {
		return fmt.Errorf("digest of the recovered copy: %w", terr)
	}
	if err != nil {
		return fmt.Errorf("ask the source for its state: %w", err)
	}
	ts := a.target.Stats()
	c.SourceHistoryUUID, c.TargetHistoryUUID = srcHistory, ts.HistoryUUID
	c.SourceCheckpoint, c.TargetCheckpoint = int64(srcSeq.LocalCheckpoint), int64(ts.Seq.LocalCheckpoint)
	atSeqno := digests && srcAt == upTo
	if atSeqno {
		c.Match = c.SourceDigest == c.TargetDigest && c.SourceHistoryUUID == c.TargetHistoryUUID
	} else {
		c.Match = c.SourceDigest == c.TargetDigest && c.SourceHistoryUUID == c.TargetHistoryUUID &&
			c.SourceCheckpoint == c.TargetCheckpoint && srcSeq.MaxSeqNo == ts.Seq.MaxSeqNo
	}
	moving := !c.Match && !atSeqno && srcSeq.MaxSeqNo > ts.Seq.MaxSeqNo && c.SourceHistoryUUID == c.TargetHistoryUUID
	switch {
	case c.Match && atSeqno:
		c.Detail = fmt.Sprintf("the copy equals the source at seqno %d: same digest and history %s; local checkpoint %d",
			upTo, ts.HistoryUUID, ts.Seq.LocalCheckpoint)
		if srcSeq.MaxSeqNo > upTo {
			c.Detail += fmt.Sprintf(" (the source indexed up to %d meanwhile; those ops reach the copy by replication)", srcSeq.MaxSeqNo)
		}
	case c.Match && digests:
		c.Detail = fmt.Sprintf("the copy equals the source: same digest, history %s, local checkpoint %d and max seqno %d",
			ts.HistoryUUID, ts.Seq.LocalCheckpoint, ts.Seq.MaxSeqNo)
	case c.Match:
		why := "verify-digest is never"
		switch {
		case notAt != "":
			why = "the source no longer holds its content at seqno " + fmt.Sprint(upTo) + ": " + notAt
		case a.m.cfg.VerifyDigest == DigestAuto:
			why = "a snapshot plan reads nothing of the source's shard; verify-digest=always compares them"
		}
		c.Detail = fmt.Sprintf("history %s, local checkpoint %d and max seqno %d equal the source's; files verified by checksum (content digests not compared: %s)",
			ts.HistoryUUID, ts.Seq.LocalCheckpoint, ts.Seq.MaxSeqNo, why)
	case moving:
		c.Detail = fmt.Sprintf("the source indexed ops up to %d while the copy was checked (copy at %d); they reach it by replication", srcSeq.MaxSeqNo, ts.Seq.MaxSeqNo)
		if notAt != "" {
			c.Detail += "; content digests not compared: " + notAt
		}
	case atSeqno:
		c.Detail = fmt.Sprintf("the copy differs from the source at seqno %d: digest %.12s vs %.12s, history %s vs %s, checkpoint %d vs %d",
			upTo, c.TargetDigest, c.SourceDigest, c.TargetHistoryUUID, c.SourceHistoryUUID, c.TargetCheckpoint, c.SourceCheckpoint)
	default:
		c.Detail = fmt.Sprintf("the copy differs from the source: digest %.12s vs %.12s, history %s vs %s, checkpoint %d vs %d, max seqno %d vs %d",
			c.TargetDigest, c.SourceDigest, c.TargetHistoryUUID, c.SourceHistoryUUID, c.TargetCheckpoint, c.SourceCheckpoint, ts.Seq.MaxSeqNo, srcSeq.MaxSeqNo)
	}
	a.r.update(func(s *Snapshot) { s.Result = c })
	if !c.Match && !moving {
		return errors.New(c.Detail)
	}
	return nil
}
