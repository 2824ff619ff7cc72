package docapi

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// Service implements ShardService on the shards of a registry. A shard a
// recovery is replacing takes no primary writes, merges or
// promotions until it ends: the recovery has the engine refuse them
// (Engine.RefuseWrites), and they answer shardstore.ErrWritesRefused,
// FailedPrecondition naming the recovery. Replicated ops (Apply) are
// accepted: the recovery's catch-up fetches them from the source anyway.
type Service struct {
	pb.UnimplementedShardServiceServer
	shards *embedded.Registry
}

// New returns the document API of the shards reg holds.
func New(reg *embedded.Registry) *Service { return &Service{shards: reg} }

// Shard returns the open shard m names, or the status error that answers
// its lookup (for a service beside this one that reads shards, as
// SnapshotService does).
func (s *Service) Shard(m *pb.ShardId) (*shardstore.Shard, error) { return s.shard(m) }

// writable is the shard a primary write goes to; the shard refuses it
// while a recovery replaces it.
func (s *Service) writable(m *pb.ShardId) (*shardstore.Shard, error) {
	return s.shard(m)
}

func (s *Service) shard(m *pb.ShardId) (*shardstore.Shard, error) {
	id, err := pbconv.ShardIDFromPB(m)
	if err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "shard: %v", err)
	}
	sh, err := s.shards.Shard(id)
	if err != nil {
		return nil, shardErr(id, err)
	}
	return sh, nil
}

// shardErr answers a shard lookup that failed: the code and reason are
// the status table's (rpcerr), the message says what it means on this
// node.
func shardErr(id shardstore.ShardID, err error) error {
	msg := fmt.Sprintf("shard %s: %v", id, err)
	switch {
	case errors.Is(err, shardstore.ErrNoCommit):
		// The engine names the recovery creating it.
		msg = err.Error()
	case errors.Is(err, shardstore.ErrNotFound):
		msg = fmt.Sprintf("shard %s does not exist on this node", id)
	case errors.Is(err, shardstore.ErrInvalidName):
		msg = err.Error()
	case errors.Is(err, shardstore.ErrClosed):
		msg = fmt.Sprintf("shard %s is closed (the node is stopping)", id)
	case errors.Is(err, shardstore.ErrUnavailable):
		msg = fmt.Sprintf("shard %s cannot be read now; it stays in place and is opened again on the next request: %v", id, err)
	case errors.Is(err, shardstore.ErrCorrupt):
		msg = fmt.Sprintf("shard %s is damaged; a recovery onto this node moves it aside and rebuilds it: %v", id, err)
	}
	return rpcerr.Statusf(err, "%s", msg)
}

func (s *Service) CreateShard(ctx context.Context, req *pb.CreateShardRequest) (*pb.CreateShardResponse, error) {
	id, err := pbconv.ShardIDFromPB(req.Shard)
	if err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "shard: %v", err)
	}
	sh, err := s.shards.Create(id, req.ExistOk)
	if err != nil {
		if shardstore.Exists(s.shards.DataDir(), id) && !req.ExistOk {
			return nil, rpcerr.Errorf(codes.AlreadyExists, rpcerr.NoReason, "shard %s already exists (set exist_ok to accept it)", id)
		}
		return nil, shardErr(id, err)
	}
	return &pb.CreateShardResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}

// ListShards lists the shards served (open, or opened on their next
// access: their numbers as they closed) and, with their state and reason,
// the shards on disk whose last open failed. It opens none.
func (s *Service) ListShards(ctx context.Context, req *pb.ListShardsRequest) (*pb.ListShardsResponse, error) {
	resp := &pb.ListShardsResponse{}
	for _, l := range s.shards.Listing() {
		resp.Shards = append(resp.Shards, pbconv.ShardStats(l.Stats))
	}
	for id, f := range s.shards.NotOpen() {
		st := pb.ShardState_SHARD_STATE_UNAVAILABLE
		if f.Corrupt {
			st = pb.ShardState_SHARD_STATE_CORRUPT
		}
		resp.Shards = append(resp.Shards, &pb.ShardStats{Shard: pbconv.ShardID(id), State: st, StateReason: f.Err.Error()})
	}
	return resp, nil
}

func (s *Service) Index(ctx context.Context, req *pb.IndexRequest) (*pb.IndexResponse, error) {
	sh, err := s.writable(req.Shard)
	if err != nil {
		return nil, err
	}
	docs := make([]shardstore.Doc, len(req.Docs))
	for i, d := range req.Docs {
		docs[i] = shardstore.Doc{Key: d.Key, Value: d.Value}
	}
	ops, err := sh.IndexBatch(ctx, docs)
	if err != nil {
		return nil, writeErr(err)
	}
	return &pb.IndexResponse{Ops: pbconv.Ops(ops)}, nil
}

// writeErr answers a write that failed: by the status table (rpcerr),
// and InvalidArgument for what it does not know (the write itself was
// refused).
func writeErr(err error) error {
	return rpcerr.StatusOrf(err, codes.InvalidArgument, "%v", err)
}

func (s *Service) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	sh, err := s.writable(req.Shard)
	if err != nil {
		return nil, err
	}
	resp := &pb.DeleteResponse{}
	for _, k := range req.Keys {
		op, err := sh.Delete(ctx, k)
		if err != nil {
			return nil, writeErr(err)
		}
		resp.Ops = append(resp.Ops, pbconv.Op(op))
	}
	return resp, nil
}

func (s *Service) Apply(ctx context.Context, req *pb.ApplyRequest) (*pb.ApplyResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	ops, err := pbconv.OpsFromPB(req.Ops)
	if err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "ops: %v", err)
	}
	if err := sh.Apply(ctx, ops); err != nil {
		return nil, writeErr(err)
	}
	return &pb.ApplyResponse{Seqno: pbconv.Stats(sh.Stats().Seq)}, nil
}

func (s *Service) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	v, seq, ok, err := sh.Get(req.Key)
	if err != nil {
		return nil, rpcerr.Errorf(codes.Internal, rpcerr.NoReason, "%v", err)
	}
	return &pb.GetResponse{Found: ok, Value: v, Seqno: int64(seq)}, nil
}

func (s *Service) Flush(ctx context.Context, req *pb.FlushRequest) (*pb.FlushResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	if req.GlobalCheckpoint != nil {
		sh.SetGlobalCheckpoint(seqno.SeqNo(*req.GlobalCheckpoint))
	}
	if err := sh.Flush(); err != nil {
		return nil, rpcerr.Errorf(codes.Internal, rpcerr.NoReason, "flush: %v", err)
	}
	return &pb.FlushResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}

func (s *Service) Merge(ctx context.Context, req *pb.MergeRequest) (*pb.MergeResponse, error) {
	sh, err := s.writable(req.Shard)
	if err != nil {
		return nil, err
	}
	if err := sh.Merge(); err != nil {
		return nil, rpcerr.StatusOrf(err, codes.Internal, "merge: %v", err)
	}
	return &pb.MergeResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}

func (s *Service) Stats(ctx context.Context, req *pb.StatsRequest) (*pb.StatsResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	return &pb.StatsResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}

func (s *Service) Digest(ctx context.Context, req *pb.DigestRequest) (*pb.DigestResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	st := sh.Stats()
	d, err := sh.Digest(ctx)
	if err != nil {
		return nil, rpcerr.Errorf(codes.Internal, rpcerr.NoReason, "digest: %v", err)
	}
	return &pb.DigestResponse{Digest: d, HistoryUuid: st.HistoryUUID, Seqno: pbconv.Stats(st.Seq)}, nil
}

func (s *Service) Promote(ctx context.Context, req *pb.PromoteRequest) (*pb.PromoteResponse, error) {
	sh, err := s.writable(req.Shard)
	if err != nil {
		return nil, err
	}
	if err := sh.Promote(); err != nil {
		return nil, rpcerr.StatusOrf(err, codes.Internal, "promote: %v", err)
	}
	return &pb.PromoteResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}
