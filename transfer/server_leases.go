package transfer

import (
	"context"
	"fmt"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

func (s *PeerServer) leaseResp(sh *shardstore.Shard, l seqno.RetentionLease) *pb.RetentionLease {
	return pbconv.Lease(l, sh.Leases().TTL())
}

// AcquireLease implements PeerService.
func (s *PeerServer) AcquireLease(ctx context.Context, req *pb.AcquireLeaseRequest) (*pb.AcquireLeaseResponse, error) {
	sh, id, err := s.shard(req.GetShard())
	if err != nil {
		return nil, err
	}
	if err := shardstore.ValidateName(req.LeaseId); err != nil {
		return nil, invalid("lease_id: %v", err)
	}
	if req.RetainingSeqno < 0 {
		return nil, invalid("retaining_seqno %d is negative", req.RetainingSeqno)
	}
	if len(req.Source) > shardstore.MaxNameLen {
		return nil, invalid("lease source is %d bytes long, at most %d allowed", len(req.Source), shardstore.MaxNameLen)
	}
	l, err := sh.Leases().AddHeld(req.LeaseId, seqno.SeqNo(req.RetainingSeqno), req.Source, PeerIdentity(ctx), s.cfg.MaxLeasesPerHolder)
	if err != nil {
		return nil, rpcerr.ToStatus(fmt.Errorf("shard %s: %w", id, err))
	}
	s.log.Debug("retention lease acquired", "shard", id.String(), "lease", l.ID, "retaining", l.RetainingSeqNo, "source", l.Source, "holder", l.Holder)
	return &pb.AcquireLeaseResponse{Lease: s.leaseResp(sh, l)}, nil
}

// RenewLease implements PeerService.
func (s *PeerServer) RenewLease(ctx context.Context, req *pb.RenewLeaseRequest) (*pb.RenewLeaseResponse, error) {
	sh, id, err := s.shard(req.GetShard())
	if err != nil {
		return nil, err
	}
	if err := shardstore.ValidateName(req.LeaseId); err != nil {
		return nil, invalid("lease_id: %v", err)
	}
	cur, held := findLease(sh.Leases().List(), req.LeaseId)
	retaining := cur.RetainingSeqNo
	if req.RetainingSeqno != nil {
		retaining = seqno.SeqNo(*req.RetainingSeqno)
		if retaining < 0 {
			return nil, invalid("retaining_seqno %d is negative", retaining)
		}
		if held && retaining < cur.RetainingSeqNo {
			return nil, invalid("retention lease %s retains from %v; a renewal may raise that, not lower it to %v",
				req.LeaseId, cur.RetainingSeqNo, retaining)
		}
	}
	// An unknown or expired lease answers ErrLeaseLost (and an expired one
	// is dropped durably), whatever the seqno.
	l, err := sh.Leases().RenewHeld(req.LeaseId, PeerIdentity(ctx), retaining)
	if err != nil {
		return nil, rpcerr.ToStatus(fmt.Errorf("shard %s: %w", id, err))
	}
	return &pb.RenewLeaseResponse{Lease: s.leaseResp(sh, l)}, nil
}

func findLease(ls []seqno.RetentionLease, id string) (seqno.RetentionLease, bool) {
	for _, l := range ls {
		if l.ID == id {
			return l, true
		}
	}
	return seqno.RetentionLease{}, false
}

// ReleaseLease implements PeerService.
func (s *PeerServer) ReleaseLease(ctx context.Context, req *pb.ReleaseLeaseRequest) (*pb.ReleaseLeaseResponse, error) {
	sh, id, err := s.shard(req.GetShard())
	if err != nil {
		return nil, err
	}
	if err := shardstore.ValidateName(req.LeaseId); err != nil {
		return nil, invalid("lease_id: %v", err)
	}
	if err := sh.Leases().RemoveHeld(req.LeaseId, PeerIdentity(ctx)); err != nil {
		return nil, rpcerr.ToStatus(fmt.Errorf("shard %s: release lease %s: %w", id, req.LeaseId, err))
	}
	return &pb.ReleaseLeaseResponse{}, nil
}
