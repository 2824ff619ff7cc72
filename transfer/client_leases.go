package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// Lease is a retention lease held on a source.
type Lease struct {
	seqno.RetentionLease
	TTL       time.Duration
	ExpiresAt time.Time
}

func leaseFromPB(m *pb.RetentionLease) (Lease, error) {
	l, ttl, err := pbconv.LeaseFromPB(m)
	if err != nil {
		return Lease{}, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return Lease{RetentionLease: l, TTL: ttl, ExpiresAt: pbconv.TimeFromPB(m.ExpiresAt)}, nil
}

// AcquireLease takes a retention lease on the source. Errors wrap
// seqno.ErrCompacted (the ops are gone: a file copy is needed) or
// seqno.ErrLeaseExists.
func AcquireLease(ctx context.Context, c pb.PeerServiceClient, shard engine.ShardID, id string, retaining seqno.SeqNo, source string) (Lease, error) {
	resp, err := c.AcquireLease(ctx, &pb.AcquireLeaseRequest{Shard: pbconv.ShardID(shard), LeaseId: id, RetainingSeqno: int64(retaining), Source: source})
	if err != nil {
		return Lease{}, fmt.Errorf("transfer: acquire lease %s on %s: %w", id, shard, rpcerr.FromStatus(err))
	}
	return leaseFromPB(resp.Lease)
}

// RenewLease refreshes a retention lease; retaining raises its seqno
// (seqno.Unassigned keeps it). A lease expired or released answers an
// error wrapping seqno.ErrLeaseLost: re-plan, never continue.
func RenewLease(ctx context.Context, c pb.PeerServiceClient, shard engine.ShardID, id string, retaining seqno.SeqNo) (Lease, error) {
	req := &pb.RenewLeaseRequest{Shard: pbconv.ShardID(shard), LeaseId: id}
	if retaining != seqno.Unassigned {
		r := int64(retaining)
		req.RetainingSeqno = &r
	}
	resp, err := c.RenewLease(ctx, req)
	if err != nil {
		return Lease{}, fmt.Errorf("transfer: renew lease %s on %s: %w", id, shard, rpcerr.FromStatus(err))
	}
	return leaseFromPB(resp.Lease)
}

// ReleaseLease releases a retention lease (an unknown one is not an error).
func ReleaseLease(ctx context.Context, c pb.PeerServiceClient, shard engine.ShardID, id string) error {
	if _, err := c.ReleaseLease(ctx, &pb.ReleaseLeaseRequest{Shard: pbconv.ShardID(shard), LeaseId: id}); err != nil {
		return fmt.Errorf("transfer: release lease %s on %s: %w", id, shard, rpcerr.FromStatus(err))
	}
	return nil
}

// HandOffLease turns the recovery's lease id on the source into the lease
// of the copy on node copy, retaining from on. Errors wrap
// errors.ErrUnsupported when the source's engine has no replication of its
// own (or the source predates the rpc): the caller releases the lease;
// seqno.ErrLeaseLost when the lease is gone.
func HandOffLease(ctx context.Context, c pb.PeerServiceClient, shard engine.ShardID, id, copy string, from seqno.SeqNo) (Lease, error) {
	resp, err := c.HandOffLease(ctx, &pb.HandOffLeaseRequest{Shard: pbconv.ShardID(shard), LeaseId: id, Copy: copy, FromSeqno: int64(from)})
	if status.Code(err) == codes.Unimplemented {
		return Lease{}, fmt.Errorf("transfer: hand lease %s on %s over to %s: %w: %w", id, shard, copy, errors.ErrUnsupported, rpcerr.FromStatus(err))
	}
	if err != nil {
		return Lease{}, fmt.Errorf("transfer: hand lease %s on %s over to %s: %w", id, shard, copy, rpcerr.FromStatus(err))
	}
	return leaseFromPB(resp.Lease)
}
