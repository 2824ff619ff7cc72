package remote

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// The calls on a shard handle: EngineService's Reader, Retention, Shard
// and Target parts.

func (srv *Server) GetShardInfo(ctx context.Context, req *pb.GetEngineShardInfoRequest) (*pb.GetEngineShardInfoResponse, error) {
	_, sh, err := srv.shard(ctx, req.GetHandle())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	in, err := sh.Info(ctx)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.GetEngineShardInfoResponse{Info: infoToPB(in)}, nil
}

func (srv *Server) Pin(ctx context.Context, req *pb.EnginePinRequest) (*pb.EnginePinResponse, error) {
	sess, sh, err := srv.shard(ctx, req.GetHandle())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	ttl := req.GetTtl().AsDuration()
	p, err := sh.Pin(ctx, engine.PinOptions{TTL: ttl})
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	md := p.Metadata()
	out := &pb.EnginePinResponse{Metadata: pbconv.Metadata(md), Paths: make(map[string]string, len(md.Files))}
	for _, f := range md.Files {
		path, err := p.Path(f.Name)
		if err != nil {
			p.Release(context.WithoutCancel(ctx))
			return nil, rpcerr.ToStatus(fmt.Errorf("the path of %s in pin %s: %w", f.Name, p.ID(), err))
		}
		out.Paths[f.Name] = path
	}
	sess.pruneExpired(now())
	// The engine's pin id names the pin on the socket (what its logs say).
	sess.mu.Lock()
	ended := sess.ended
	if !ended {
		sess.pins[p.ID()] = &heldPin{pin: p, ttl: ttl, renewed: now()}
	}
	sess.mu.Unlock()
	if ended {
		p.Release(context.WithoutCancel(ctx))
		return nil, rpcerr.ToStatus(sess.closedErr())
	}
	out.PinId = p.ID()
	return out, nil
}

// pin resolves a pin of the caller's session.
func (srv *Server) pin(ctx context.Context, id string) (*session, *heldPin, error) {
	sess, err := srv.sessionOf(ctx)
	if err != nil {
		return nil, nil, err
	}
	p, err := get(sess, sess.pins, id, engine.ErrPinLost, "pin")
	return sess, p, err
}

func (srv *Server) RenewPin(ctx context.Context, req *pb.EnginePinIdRequest) (*pb.EnginePinIdResponse, error) {
	sess, p, err := srv.pin(ctx, req.GetPinId())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	if err := p.pin.Renew(ctx); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	sess.mu.Lock()
	p.renewed = now()
	sess.mu.Unlock()
	return &pb.EnginePinIdResponse{}, nil
}

func (srv *Server) ReleasePin(ctx context.Context, req *pb.EnginePinIdRequest) (*pb.EnginePinIdResponse, error) {
	sess, err := srv.sessionOf(ctx)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	p, err := get(sess, sess.pins, req.GetPinId(), engine.ErrPinLost, "pin")
	if err != nil {
		return &pb.EnginePinIdResponse{}, nil // released twice, or expired: no error
	}
	drop(sess, sess.pins, req.GetPinId())
	if err := p.pin.Release(ctx); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.EnginePinIdResponse{}, nil
}

func (srv *Server) ReadOps(req *pb.EngineReadOpsRequest, stream grpc.ServerStreamingServer[pb.EngineOpBatch]) error {
	ctx := stream.Context()
	_, sh, err := srv.shard(ctx, req.GetHandle())
	if err != nil {
		return rpcerr.ToStatus(err)
	}
	r := seqno.Range{From: seqno.SeqNo(req.GetRange().GetFrom()), To: seqno.SeqNo(req.GetRange().GetTo())}
	err = sh.ReadOps(ctx, engine.OpsRequest{Range: r, History: req.GetHistory()}, func(ops []engine.Op) error {
		return stream.Send(&pb.EngineOpBatch{Ops: opsToPB(ops)})
	})
	return rpcerr.ToStatus(err)
}

func (srv *Server) DigestAt(ctx context.Context, req *pb.EngineDigestRequest) (*pb.EngineDigestResponse, error) {
	_, sh, err := srv.shard(ctx, req.GetHandle())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	var base engine.Pin
	if req.GetBasePinId() != "" {
		_, p, err := srv.pin(ctx, req.GetBasePinId())
		if err != nil {
			return nil, rpcerr.ToStatus(err)
		}
		base = p.pin
	}
	d, at, err := sh.DigestAt(ctx, base, seqno.SeqNo(req.GetUpTo()))
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.EngineDigestResponse{Digest: d, At: int64(at)}, nil
}

func (srv *Server) AcquireLease(ctx context.Context, req *pb.EngineAcquireLeaseRequest) (*pb.EngineLeaseResponse, error) {
	_, sh, err := srv.shard(ctx, req.GetHandle())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	l, err := sh.AcquireLease(ctx, engine.LeaseRequest{ID: req.GetId(), RetainingSeqNo: seqno.SeqNo(req.GetRetainingSeqno()),
		Source: req.GetSource(), Holder: req.GetHolder(), MaxPerHolder: int(req.GetMaxPerHolder())})
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.EngineLeaseResponse{Lease: leaseToPB(l)}, nil
}

func (srv *Server) RenewLease(ctx context.Context, req *pb.EngineRenewLeaseRequest) (*pb.EngineLeaseResponse, error) {
	_, sh, err := srv.shard(ctx, req.GetHandle())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	l, err := sh.RenewLease(ctx, req.GetId(), req.GetHolder(), seqno.SeqNo(req.GetRetainingSeqno()))
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.EngineLeaseResponse{Lease: leaseToPB(l)}, nil
}

func (srv *Server) ReleaseLease(ctx context.Context, req *pb.EngineReleaseLeaseRequest) (*pb.EngineReleaseLeaseResponse, error) {
	_, sh, err := srv.shard(ctx, req.GetHandle())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	if err := sh.ReleaseLease(ctx, req.GetId(), req.GetHolder()); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.EngineReleaseLeaseResponse{}, nil
}

func (srv *Server) HandOff(ctx context.Context, req *pb.EngineHandOffRequest) (*pb.EngineLeaseResponse, error) {
	_, sh, err := srv.shard(ctx, req.GetHandle())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	l, err := sh.HandOff(ctx, engine.HandOff{LeaseID: req.GetLeaseId(), Holder: req.GetHolder(), Copy: req.GetCopy(), From: seqno.SeqNo(req.GetFrom())})
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.EngineLeaseResponse{Lease: leaseToPB(l)}, nil
}

func (srv *Server) Sweep(ctx context.Context, req *pb.EngineSweepRequest) (*pb.EngineSweepResponse, error) {
	_, sh, err := srv.shard(ctx, req.GetHandle())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	keep := map[string]bool{}
	for _, id := range req.GetKeepStaging() {
		keep[id] = true
	}
	res, err := sh.Sweep(ctx, keep)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.EngineSweepResponse{Staging: res.Staging, Temps: res.Temps, Unreferenced: res.Unreferenced, Leases: res.Leases}, nil
}

func (srv *Server) Apply(ctx context.Context, req *pb.EngineApplyRequest) (*pb.EngineApplyResponse, error) {
	t, err := srv.target(ctx, req.GetHandle())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	if err := t.Apply(ctx, opsFromPB(req.GetOps())); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.EngineApplyResponse{}, nil
}

func (srv *Server) AdoptTerm(ctx context.Context, req *pb.AdoptTermRequest) (*pb.AdoptTermResponse, error) {
	t, err := srv.target(ctx, req.GetHandle())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	if err := t.AdoptTerm(ctx, req.GetTerm()); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.AdoptTermResponse{}, nil
}

func (srv *Server) Flush(ctx context.Context, req *pb.EngineFlushRequest) (*pb.EngineFlushResponse, error) {
	t, err := srv.target(ctx, req.GetHandle())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	if err := t.Flush(ctx); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.EngineFlushResponse{}, nil
}
