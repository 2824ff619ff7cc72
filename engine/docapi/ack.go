package docapi

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// AckReplica implements ShardService: the replicator (whoever applies this
// primary's ops to a replica) acknowledges the replica's local checkpoint,
// which renews the copy's retention lease and raises it
// (shardstore.Shard.AckCopy).
func (s *Service) AckReplica(ctx context.Context, req *pb.AckReplicaRequest) (*pb.AckReplicaResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	if err := engine.ValidateName(req.Copy); err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "copy: %v", err)
	}
	if req.LocalCheckpoint < int64(seqno.NoOpsPerformed) {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "local_checkpoint %d is below %d", req.LocalCheckpoint, seqno.NoOpsPerformed)
	}
	l, err := sh.AckCopy(req.Copy, seqno.SeqNo(req.LocalCheckpoint))
	if err != nil {
		return nil, rpcerr.ToStatus(fmt.Errorf("shard %s: %w", sh.ID(), err))
	}
	return &pb.AckReplicaResponse{Lease: pbconv.Lease(l, 0)}, nil
}
