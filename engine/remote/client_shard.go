package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// shard is a handle of a copy on the engine's side: an engine.Target (the
// engine refuses the Target calls on a handle GetShard made).
type shard struct {
	c  *Client
	s  *clientSession
	h  string
	id engine.ShardID
}

var _ engine.Target = (*shard)(nil)

func (sh *shard) ID() engine.ShardID { return sh.id }

func (sh *shard) what(call string) string { return call + " " + sh.id.String() }

func (sh *shard) Info(ctx context.Context) (engine.ShardInfo, error) {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return engine.ShardInfo{}, err
	}
	resp, err := sh.c.rpc.GetShardInfo(cctx, &pb.GetEngineShardInfoRequest{Handle: sh.h})
	if err != nil {
		return engine.ShardInfo{}, sh.c.wrap(sh.what("info of"), err)
	}
	return infoFromPB(resp.GetInfo()), nil
}

func (sh *shard) Pin(ctx context.Context, opts engine.PinOptions) (engine.Pin, error) {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return nil, err
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("%w: pin TTL %v is negative", engine.ErrInvalidArgument, opts.TTL)
	}
	start := time.Now()
	resp, err := sh.c.rpc.Pin(cctx, &pb.EnginePinRequest{Handle: sh.h, Ttl: durationToPB(opts.TTL)})
	if err != nil {
		return nil, sh.c.wrap(sh.what("pin"), err)
	}
	return &pin{c: sh.c, s: sh.s, id: resp.GetPinId(), md: metadataFromPB(resp.GetMetadata()), paths: resp.GetPaths(),
		ttl: opts.TTL, renewed: start}, nil
}

func (sh *shard) ReadOps(ctx context.Context, req engine.OpsRequest, fn func([]engine.Op) error) error {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(cctx)
	defer cancel()
	stream, err := sh.c.rpc.ReadOps(cctx, &pb.EngineReadOpsRequest{Handle: sh.h, Range: pbconv.Range(req.Range), History: req.History})
	if err != nil {
		return sh.c.wrap(sh.what("read ops of"), err)
	}
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return sh.c.wrap(sh.what("read ops of"), err)
		}
		if err := fn(opsFromPB(b.GetOps())); err != nil {
			return err
		}
	}
}

func (sh *shard) DigestAt(ctx context.Context, base engine.Pin, upTo seqno.SeqNo) (string, seqno.SeqNo, error) {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return "", upTo, err
	}
	req := &pb.EngineDigestRequest{Handle: sh.h, UpTo: int64(upTo)}
	if base != nil {
		p, ok := base.(*pin)
		if !ok || p.c != sh.c {
			return "", upTo, fmt.Errorf("%w: the base of a digest of %s must be a pin of it", engine.ErrInvalidArgument, sh.id)
		}
		req.BasePinId = p.id
	}
	resp, err := sh.c.rpc.DigestAt(cctx, req)
	if err != nil {
		return "", upTo, sh.c.wrap(sh.what("digest of"), err)
	}
	return resp.GetDigest(), seqno.SeqNo(resp.GetAt()), nil
}

func (sh *shard) AcquireLease(ctx context.Context, req engine.LeaseRequest) (seqno.RetentionLease, error) {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return seqno.RetentionLease{}, err
	}
	resp, err := sh.c.rpc.AcquireLease(cctx, &pb.EngineAcquireLeaseRequest{Handle: sh.h, Id: req.ID, RetainingSeqno: int64(req.RetainingSeqNo),
		Source: req.Source, Holder: req.Holder, MaxPerHolder: int32(req.MaxPerHolder)})
	if err != nil {
		return seqno.RetentionLease{}, sh.c.wrap(sh.what("acquire a lease on"), err)
	}
	return leaseFromPB(resp.GetLease()), nil
}

func (sh *shard) RenewLease(ctx context.Context, id, holder string, retaining seqno.SeqNo) (seqno.RetentionLease, error) {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return seqno.RetentionLease{}, err
	}
	resp, err := sh.c.rpc.RenewLease(cctx, &pb.EngineRenewLeaseRequest{Handle: sh.h, Id: id, Holder: holder, RetainingSeqno: int64(retaining)})
	if err != nil {
		return seqno.RetentionLease{}, sh.c.wrap(sh.what("renew a lease on"), err)
	}
	return leaseFromPB(resp.GetLease()), nil
}

func (sh *shard) ReleaseLease(ctx context.Context, id, holder string) error {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return err
	}
	_, err = sh.c.rpc.ReleaseLease(cctx, &pb.EngineReleaseLeaseRequest{Handle: sh.h, Id: id, Holder: holder})
	return sh.c.wrap(sh.what("release a lease on"), err)
}

func (sh *shard) HandOff(ctx context.Context, req engine.HandOff) (seqno.RetentionLease, error) {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return seqno.RetentionLease{}, err
	}
	resp, err := sh.c.rpc.HandOff(cctx, &pb.EngineHandOffRequest{Handle: sh.h, LeaseId: req.LeaseID, Holder: req.Holder, Copy: req.Copy, From: int64(req.From)})
	if err != nil {
		return seqno.RetentionLease{}, sh.c.wrap(sh.what("hand off a lease of"), err)
	}
	return leaseFromPB(resp.GetLease()), nil
}

func (sh *shard) Sweep(ctx context.Context, keepStaging map[string]bool) (engine.SweepResult, error) {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return engine.SweepResult{}, err
	}
	req := &pb.EngineSweepRequest{Handle: sh.h}
	for id, k := range keepStaging {
		if k {
			req.KeepStaging = append(req.KeepStaging, id)
		}
	}
	resp, err := sh.c.rpc.Sweep(cctx, req)
	if err != nil {
		return engine.SweepResult{}, sh.c.wrap(sh.what("sweep"), err)
	}
	return engine.SweepResult{Staging: resp.GetStaging(), Temps: resp.GetTemps(), Unreferenced: resp.GetUnreferenced(), Leases: resp.GetLeases()}, nil
}

func (sh *shard) StartStaging(ctx context.Context, recoveryID string) (engine.Staging, error) {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return nil, err
	}
	resp, err := sh.c.rpc.StartStaging(cctx, &pb.StartStagingRequest{Handle: sh.h, RecoveryId: recoveryID})
	if err != nil {
		return nil, sh.c.wrap(sh.what("start staging "+recoveryID+" in"), err)
	}
	return &staging{c: sh.c, s: sh.s, h: resp.GetStaging(), id: recoveryID, dir: resp.GetDir(), shard: sh.id}, nil
}

func (sh *shard) Apply(ctx context.Context, ops []engine.Op) error {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return err
	}
	_, err = sh.c.rpc.Apply(cctx, &pb.EngineApplyRequest{Handle: sh.h, Ops: opsToPB(ops)})
	return sh.c.wrap(sh.what("apply ops to"), err)
}

func (sh *shard) AdoptTerm(ctx context.Context, term uint64) error {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return err
	}
	_, err = sh.c.rpc.AdoptTerm(cctx, &pb.AdoptTermRequest{Handle: sh.h, Term: term})
	return sh.c.wrap(sh.what("adopt a term in"), err)
}

func (sh *shard) Flush(ctx context.Context) error {
	cctx, err := sh.c.call(ctx, sh.s)
	if err != nil {
		return err
	}
	_, err = sh.c.rpc.Flush(cctx, &pb.EngineFlushRequest{Handle: sh.h})
	return sh.c.wrap(sh.what("flush"), err)
}
