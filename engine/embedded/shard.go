package embedded

import (
	"context"
	"errors"
	"fmt"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// shard is a shard of the registry through the contract: an engine.Shard,
// and an engine.Target when OpenTarget returned it. It holds the
// registry's entry, not an open shard: each call opens the shard again if
// the registry closed it idle, and keeps it open until it returns. Its
// calls answer ErrClosed once the copy is removed, moved aside or the
// engine closed.
type shard struct {
	e   *Engine
	ent *entry
}

var _ engine.Target = (*shard)(nil)

// Batches of ReadOps: at most readBatchOps ops or about readBatchBytes
// (small ops end a batch by count, large ones by bytes).
const (
	readBatchOps   = 10000
	readBatchBytes = 1 << 20
)

// use returns the shard for one call, opened again if the registry
// closed it idle, and kept open until done is called; a copy the engine
// closed answers ErrClosed.
func (s *shard) use(ctx context.Context) (*shardstore.Shard, func(), error) {
	if err := s.e.check(ctx); err != nil {
		return nil, nil, err
	}
	sh, err := s.e.reg.acquire(s.ent)
	if err != nil {
		return nil, nil, err
	}
	done := func() { s.e.reg.release(s.ent) }
	if sh.Closed() {
		done()
		return nil, nil, fmt.Errorf("%w: shard %s was closed (replaced, or the node is stopping); ask for it again", engine.ErrClosed, s.ent.id)
	}
	return sh, done, nil
}

// useCommitted is use, and ErrNoCommit for a target without a commit.
func (s *shard) useCommitted(ctx context.Context) (*shardstore.Shard, func(), error) {
	sh, done, err := s.use(ctx)
	if err != nil {
		return nil, nil, err
	}
	if !sh.Committed() {
		done()
		return nil, nil, fmt.Errorf("%w: shard %s is being created by a recovery and exists once it publishes", engine.ErrNoCommit, s.ent.id)
	}
	return sh, done, nil
}

func (s *shard) ID() engine.ShardID { return s.ent.id }

func (s *shard) Info(ctx context.Context) (engine.ShardInfo, error) {
	sh, done, err := s.use(ctx)
	if err != nil {
		return engine.ShardInfo{}, err
	}
	defer done()
	st, leases := sh.Stats(), sh.Leases()
	return engine.ShardInfo{
		ID: sh.ID(), Committed: sh.Committed(), Meta: sh.Metadata(), Seq: st.Seq, PrimaryTerm: st.PrimaryTerm,
		Retained: sh.RetainedOps(), AvgOpBytes: sh.AvgOpBytes(), Leases: leases.List(), LeaseTTL: leases.TTL(),
	}, nil
}

func (s *shard) ReadOps(ctx context.Context, req engine.OpsRequest, fn func([]engine.Op) error) error {
	sh, done, err := s.useCommitted(ctx)
	if err != nil {
		return err
	}
	defer done()
	var (
		batch []engine.Op
		bytes int
	)
	err = sh.ReadOpsOf(req.History, req.Range, func(op engine.Op) error {
		if batch == nil {
			batch = make([]engine.Op, 0, min(int64(readBatchOps), req.Range.Len()))
		}
		batch = append(batch, op)
		if bytes += len(op.Key) + len(op.Value) + 32; len(batch) < readBatchOps && bytes < readBatchBytes {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		b := batch
		batch, bytes = nil, 0
		return fn(b)
	})
	if err != nil || len(batch) == 0 {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fn(batch)
}

func (s *shard) DigestAt(ctx context.Context, base engine.Pin, upTo seqno.SeqNo) (string, seqno.SeqNo, error) {
	sh, done, err := s.useCommitted(ctx)
	if err != nil {
		return "", upTo, err
	}
	defer done()
	if upTo < seqno.Unassigned {
		return "", upTo, fmt.Errorf("%w: digest up to seqno %d", engine.ErrInvalidArgument, upTo)
	}
	var ref *shardstore.CommitRef
	if base != nil {
		p, ok := base.(*pin)
		if !ok || p.ent != s.ent {
			return "", upTo, fmt.Errorf("%w: the base of a digest of %s must be a pin of it", engine.ErrInvalidArgument, sh.ID())
		}
		if !p.live() {
			return "", upTo, p.lost()
		}
		ref = p.ref
	}
	return sh.DigestAt(ctx, ref, upTo)
}

func (s *shard) AcquireLease(ctx context.Context, req engine.LeaseRequest) (seqno.RetentionLease, error) {
	sh, done, err := s.useCommitted(ctx)
	if err != nil {
		return seqno.RetentionLease{}, err
	}
	defer done()
	if err := engine.ValidateName(req.ID); err != nil {
		return seqno.RetentionLease{}, fmt.Errorf("lease id: %w", err)
	}
	switch {
	case req.RetainingSeqNo < 0:
		return seqno.RetentionLease{}, fmt.Errorf("%w: retaining seqno %d is negative", engine.ErrInvalidArgument, req.RetainingSeqNo)
	case len(req.Source) > engine.MaxNameLen, len(req.Holder) > engine.MaxNameLen:
		return seqno.RetentionLease{}, fmt.Errorf("%w: lease source or holder longer than %d bytes", engine.ErrInvalidArgument, engine.MaxNameLen)
	case req.MaxPerHolder < 0:
		return seqno.RetentionLease{}, fmt.Errorf("%w: a bound of %d leases per holder", engine.ErrInvalidArgument, req.MaxPerHolder)
	}
	return sh.Leases().AddHeld(req.ID, req.RetainingSeqNo, req.Source, req.Holder, req.MaxPerHolder)
}

func (s *shard) RenewLease(ctx context.Context, id, holder string, retaining seqno.SeqNo) (seqno.RetentionLease, error) {
	sh, done, err := s.useCommitted(ctx)
	if err != nil {
		return seqno.RetentionLease{}, err
	}
	defer done()
	if err := engine.ValidateName(id); err != nil {
		return seqno.RetentionLease{}, fmt.Errorf("lease id: %w", err)
	}
	leases := sh.Leases()
	var cur seqno.RetentionLease
	held := false
	for _, l := range leases.List() {
		if l.ID == id {
			cur, held = l, true
		}
	}
	switch {
	case retaining == seqno.Unassigned:
		retaining = cur.RetainingSeqNo
	case retaining < 0:
		return seqno.RetentionLease{}, fmt.Errorf("%w: retaining seqno %d is negative", engine.ErrInvalidArgument, retaining)
	case held && retaining < cur.RetainingSeqNo:
		return seqno.RetentionLease{}, fmt.Errorf("%w: retention lease %s retains from %v; a renewal may raise that, not lower it to %v",
			engine.ErrInvalidArgument, id, cur.RetainingSeqNo, retaining)
	}
	return leases.RenewHeld(id, holder, retaining)
}

func (s *shard) ReleaseLease(ctx context.Context, id, holder string) error {
	sh, done, err := s.use(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := engine.ValidateName(id); err != nil {
		return fmt.Errorf("lease id: %w", err)
	}
	return sh.Leases().RemoveHeld(id, holder)
}

// HandOff implements engine.Retention: the recovery's lease becomes the
// copy's (shardstore.Shard.HandOff: id "copy-<copy>", held by the copy,
// living for shardstore.Options.CopyRetention), in one durable write. The
// reference engine's replication is whoever applies the primary's ops to
// the replicas (tests, the demo: ShardService.Apply); it acknowledges what
// a replica holds with ShardService.AckReplica, which renews that lease
// and raises it (shardstore.Shard.AckCopy).
func (s *shard) HandOff(ctx context.Context, req engine.HandOff) (seqno.RetentionLease, error) {
	sh, done, err := s.useCommitted(ctx)
	if err != nil {
		return seqno.RetentionLease{}, err
	}
	defer done()
	if err := engine.ValidateName(req.LeaseID); err != nil {
		return seqno.RetentionLease{}, fmt.Errorf("lease id: %w", err)
	}
	if err := engine.ValidateName(req.Copy); err != nil {
		return seqno.RetentionLease{}, fmt.Errorf("copy: %w", err)
	}
	if req.From < 0 {
		return seqno.RetentionLease{}, fmt.Errorf("%w: hand-off from seqno %d", engine.ErrInvalidArgument, req.From)
	}
	return sh.HandOff(req.LeaseID, req.Holder, req.Copy, req.From)
}

func (s *shard) Sweep(ctx context.Context, keepStaging map[string]bool) (engine.SweepResult, error) {
	sh, done, err := s.use(ctx)
	if err != nil {
		return engine.SweepResult{}, err
	}
	defer done()
	res, err := sh.Sweep(keepStaging)
	out := engine.SweepResult{Staging: res.Staging, Temps: res.Temps, Unreferenced: res.Unreferenced}
	if errors.Is(err, shardstore.ErrClosed) {
		return out, err
	}
	expired, lerr := sh.Leases().Expire()
	for _, l := range expired {
		out.Leases = append(out.Leases, l.ID)
	}
	if lerr != nil {
		lerr = fmt.Errorf("expire the leases of %s: %w", sh.ID(), lerr)
	}
	return out, errors.Join(err, lerr)
}

func (s *shard) StartStaging(ctx context.Context, recoveryID string) (engine.Staging, error) {
	sh, done, err := s.use(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	st, err := sh.StartStaging(recoveryID)
	if err != nil {
		return nil, err
	}
	return &staging{st: st}, nil
}

func (s *shard) Apply(ctx context.Context, ops []engine.Op) error {
	sh, done, err := s.useCommitted(ctx)
	if err != nil {
		return err
	}
	defer done()
	return sh.Apply(ctx, ops)
}

func (s *shard) AdoptTerm(ctx context.Context, term uint64) error {
	sh, done, err := s.useCommitted(ctx)
	if err != nil {
		return err
	}
	defer done()
	sh.AdoptTerm(term)
	return nil
}

func (s *shard) Flush(ctx context.Context) error {
	sh, done, err := s.useCommitted(ctx)
	if err != nil {
		return err
	}
	defer done()
	return sh.Flush()
}
