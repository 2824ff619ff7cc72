package transfer

import (
	"context"
	"fmt"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// leaseResp answers a lease with the copy's lease TTL (one Info call).
func (s *PeerServer) leaseResp(ctx context.Context, sh engine.Shard, l seqno.RetentionLease) (*pb.RetentionLease, error) {
	in, err := sh.Info(ctx)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return pbconv.Lease(l, in.LeaseTTL), nil
}

// AcquireLease implements PeerService.
func (s *PeerServer) AcquireLease(ctx context.Context, req *pb.AcquireLeaseRequest) (*pb.AcquireLeaseResponse, error) {
	sh, id, err := s.shard(ctx, req.GetShard())
	if err != nil {
		return nil, err
	}
	if err := engine.ValidateName(req.LeaseId); err != nil {
		return nil, invalid("lease_id: %v", err)
	}
	if req.RetainingSeqno < 0 {
		return nil, invalid("retaining_seqno %d is negative", req.RetainingSeqno)
	}
	if len(req.Source) > engine.MaxNameLen {
		return nil, invalid("lease source is %d bytes long, at most %d allowed", len(req.Source), engine.MaxNameLen)
	}
	l, err := sh.AcquireLease(ctx, engine.LeaseRequest{ID: req.LeaseId, RetainingSeqNo: seqno.SeqNo(req.RetainingSeqno), Source: req.Source,
		Holder: PeerIdentity(ctx), MaxPerHolder: s.cfg.MaxLeasesPerHolder})
	if err != nil {
		return nil, rpcerr.ToStatus(fmt.Errorf("shard %s: %w", id, err))
	}
	s.log.Debug("retention lease acquired", "shard", id.String(), "lease", l.ID, "retaining", l.RetainingSeqNo, "source", l.Source, "holder", l.Holder)
	resp, err := s.leaseResp(ctx, sh, l)
	if err != nil {
		return nil, err
	}
	return &pb.AcquireLeaseResponse{Lease: resp}, nil
}

// RenewLease implements PeerService.
func (s *PeerServer) RenewLease(ctx context.Context, req *pb.RenewLeaseRequest) (*pb.RenewLeaseResponse, error) {
	sh, id, err := s.shard(ctx, req.GetShard())
	if err != nil {
		return nil, err
	}
	if err := engine.ValidateName(req.LeaseId); err != nil {
		return nil, invalid("lease_id: %v", err)
	}
	retaining := seqno.Unassigned // keeps the lease's
	if req.RetainingSeqno != nil {
		if retaining = seqno.SeqNo(*req.RetainingSeqno); retaining < 0 {
			return nil, invalid("retaining_seqno %d is negative", retaining)
		}
	}
	// An unknown or expired lease answers ErrLeaseLost (and an expired one
	// is dropped durably), whatever the seqno; lowering the retaining
	// seqno of a live one ErrInvalidArgument.
	l, err := sh.RenewLease(ctx, req.LeaseId, PeerIdentity(ctx), retaining)
	if err != nil {
		return nil, rpcerr.ToStatus(fmt.Errorf("shard %s: %w", id, err))
	}
	resp, err := s.leaseResp(ctx, sh, l)
	if err != nil {
		return nil, err
	}
	return &pb.RenewLeaseResponse{Lease: resp}, nil
}

// ReleaseLease implements PeerService.
func (s *PeerServer) ReleaseLease(ctx context.Context, req *pb.ReleaseLeaseRequest) (*pb.ReleaseLeaseResponse, error) {
	sh, id, err := s.shard(ctx, req.GetShard())
	if err != nil {
		return nil, err
	}
	if err := engine.ValidateName(req.LeaseId); err != nil {
		return nil, invalid("lease_id: %v", err)
	}
	if err := sh.ReleaseLease(ctx, req.LeaseId, PeerIdentity(ctx)); err != nil {
		return nil, rpcerr.ToStatus(fmt.Errorf("shard %s: release lease %s: %w", id, req.LeaseId, err))
	}
	return &pb.ReleaseLeaseResponse{}, nil
}

// HandOffLease implements PeerService: the caller's recovery lease becomes
// the recovered copy's (engine.Retention.HandOff).
func (s *PeerServer) HandOffLease(ctx context.Context, req *pb.HandOffLeaseRequest) (*pb.HandOffLeaseResponse, error) {
	sh, id, err := s.shard(ctx, req.GetShard())
	if err != nil {
		return nil, err
	}
	if err := engine.ValidateName(req.LeaseId); err != nil {
		return nil, invalid("lease_id: %v", err)
	}
	if err := engine.ValidateName(req.Copy); err != nil {
		return nil, invalid("copy: %v", err)
	}
	if req.FromSeqno < 0 {
		return nil, invalid("from_seqno %d is negative", req.FromSeqno)
	}
	l, err := sh.HandOff(ctx, engine.HandOff{LeaseID: req.LeaseId, Holder: PeerIdentity(ctx), Copy: req.Copy, From: seqno.SeqNo(req.FromSeqno)})
	if err != nil {
		return nil, rpcerr.ToStatus(fmt.Errorf("shard %s: hand lease %s over to copy %s: %w", id, req.LeaseId, req.Copy, err))
	}
	s.log.Info("retention lease handed over to the copy", "shard", id.String(), "lease", req.LeaseId, "copy_lease", l.ID, "from", l.RetainingSeqNo)
	resp, err := s.leaseResp(ctx, sh, l)
	if err != nil {
		return nil, err
	}
	return &pb.HandOffLeaseResponse{Lease: resp}, nil
}
