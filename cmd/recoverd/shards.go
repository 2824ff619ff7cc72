package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/transfer"
)

// shards holds the shards open on this node: the peer server reads them as
// a source, recoveries write them as a target, ShardService runs the
// reference engine on them.
type shards struct {
	dataDir string
	opts    shardstore.Options
	log     *slog.Logger

	mu   sync.Mutex
	open map[shardstore.ShardID]*shardstore.Shard
}

func newShards(dataDir string, opts shardstore.Options, log *slog.Logger) *shards {
	return &shards{dataDir: dataDir, opts: opts, log: log, open: map[shardstore.ShardID]*shardstore.Shard{}}
}

// openAll opens every shard on disk: opening cleans what a crash left
// (staging of interrupted recoveries, temp files, unreferenced files).
func (r *shards) openAll() error {
	ids, err := shardstore.List(r.dataDir)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := r.Shard(id); err != nil {
			r.log.Error("shard does not open; a recovery onto this node will move it aside", "shard", id.String(), "error", err)
		}
	}
	return nil
}

// Shard returns an open shard, opening it if it exists on disk
// (transfer.ShardProvider).
func (r *shards) Shard(id shardstore.ShardID) (*shardstore.Shard, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.openLocked(id, false)
}

func (r *shards) openLocked(id shardstore.ShardID, create bool) (*shardstore.Shard, error) {
	if s, ok := r.open[id]; ok {
		return s, nil
	}
	opts := r.opts
	opts.Create = create
	s, err := shardstore.Open(r.dataDir, id, opts)
	if err != nil {
		return nil, err
	}
	r.open[id] = s
	return s, nil
}

// Create creates an empty shard with a new history.
func (r *shards) Create(id shardstore.ShardID, existOK bool) (*shardstore.Shard, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.open[id]; ok || shardstore.Exists(r.dataDir, id) {
		if !existOK {
			return nil, fmt.Errorf("shard %s already exists", id)
		}
	}
	return r.openLocked(id, true)
}

// OpenTarget implements recovery.Targets. A shard that does not open
// because its data is damaged is moved to <data>/quarantine (never
// deleted) and an empty one takes its place.
func (r *shards) OpenTarget(id shardstore.ShardID) (*shardstore.Shard, string, error) {
	if err := id.Validate(); err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.openLocked(id, true)
	if err == nil || !errors.Is(err, shardstore.ErrCorrupt) {
		return s, "", err
	}
	unreadable := err.Error()
	dst := filepath.Join(r.dataDir, "quarantine", id.Index+"."+strconv.Itoa(id.Shard)+"."+time.Now().UTC().Format("20060102T150405.000"))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, "", err
	}
	if err := os.Rename(shardstore.Dir(r.dataDir, id), dst); err != nil {
		return nil, "", fmt.Errorf("move unreadable shard aside: %w", err)
	}
	r.log.Warn("moved an unreadable shard aside", "shard", id.String(), "to", dst, "cause", unreadable)
	s, err = r.openLocked(id, true)
	return s, unreadable, err
}

func (r *shards) list() []*shardstore.Shard {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*shardstore.Shard, 0, len(r.open))
	for _, s := range r.open {
		out = append(out, s)
	}
	return out
}

func (r *shards) closeAll() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for id, s := range r.open {
		errs = append(errs, s.Close())
		delete(r.open, id)
	}
	return errors.Join(errs...)
}

// shardService implements ShardService: the reference engine over gRPC.
type shardService struct {
	pb.UnimplementedShardServiceServer
	shards *shards
	// recovering reports the shards a recovery is rebuilding on this node:
	// they take no primary writes, merges or promotions until it ends (its
	// publish would replace what they wrote). Replicated ops (Apply) are
	// accepted: the recovery's catch-up fetches them from the source anyway.
	recovering func() map[shardstore.ShardID]string
}

// writable refuses a write to a shard being recovered.
func (s *shardService) writable(m *pb.ShardId) (*shardstore.Shard, error) {
	sh, err := s.shard(m)
	if err != nil {
		return nil, err
	}
	if s.recovering != nil {
		if id, ok := s.recovering()[sh.ID()]; ok {
			return nil, transfer.Errorf(codes.FailedPrecondition, pb.ErrorReason_RECOVERY_RUNNING,
				"shard %s is being recovered by %s; write to it once the recovery is done (or cancel it)", sh.ID(), id)
		}
	}
	return sh, nil
}

func (s *shardService) shard(m *pb.ShardId) (*shardstore.Shard, error) {
	id, err := pbconv.ShardIDFromPB(m)
	if err != nil {
		return nil, transfer.Errorf(codes.InvalidArgument, 0, "shard: %v", err)
	}
	sh, err := s.shards.Shard(id)
	if err != nil {
		return nil, shardErr(id, err)
	}
	return sh, nil
}

func shardErr(id shardstore.ShardID, err error) error {
	switch {
	case errors.Is(err, shardstore.ErrNotFound):
		return transfer.Errorf(codes.NotFound, pb.ErrorReason_SHARD_NOT_FOUND, "shard %s does not exist on this node", id)
	case errors.Is(err, shardstore.ErrInvalidName):
		return transfer.Errorf(codes.InvalidArgument, 0, "%v", err)
	case errors.Is(err, shardstore.ErrClosed):
		return transfer.Errorf(codes.Unavailable, 0, "shard %s is closed (the node is stopping)", id)
	}
	return transfer.Errorf(codes.Internal, 0, "shard %s: %v", id, err)
}

func (s *shardService) CreateShard(ctx context.Context, req *pb.CreateShardRequest) (*pb.CreateShardResponse, error) {
	id, err := pbconv.ShardIDFromPB(req.Shard)
	if err != nil {
		return nil, transfer.Errorf(codes.InvalidArgument, 0, "shard: %v", err)
	}
	sh, err := s.shards.Create(id, req.ExistOk)
	if err != nil {
		if shardstore.Exists(s.shards.dataDir, id) && !req.ExistOk {
			return nil, transfer.Errorf(codes.AlreadyExists, 0, "shard %s already exists (set exist_ok to accept it)", id)
		}
		return nil, shardErr(id, err)
	}
	return &pb.CreateShardResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}

func (s *shardService) ListShards(ctx context.Context, req *pb.ListShardsRequest) (*pb.ListShardsResponse, error) {
	resp := &pb.ListShardsResponse{}
	for _, sh := range s.shards.list() {
		resp.Shards = append(resp.Shards, pbconv.ShardStats(sh.Stats()))
	}
	return resp, nil
}

func (s *shardService) Index(ctx context.Context, req *pb.IndexRequest) (*pb.IndexResponse, error) {
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

func writeErr(err error) error {
	if errors.Is(err, shardstore.ErrClosed) {
		return transfer.Errorf(codes.Unavailable, 0, "%v", err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return transfer.Errorf(codes.Canceled, 0, "%v", err)
	}
	if errors.Is(err, shardstore.ErrStaleTerm) {
		return transfer.ToStatus(err)
	}
	return transfer.Errorf(codes.InvalidArgument, 0, "%v", err)
}

func (s *shardService) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
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

func (s *shardService) Apply(ctx context.Context, req *pb.ApplyRequest) (*pb.ApplyResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	ops, err := pbconv.OpsFromPB(req.Ops)
	if err != nil {
		return nil, transfer.Errorf(codes.InvalidArgument, 0, "ops: %v", err)
	}
	if err := sh.Apply(ctx, ops); err != nil {
		return nil, writeErr(err)
	}
	return &pb.ApplyResponse{Seqno: pbconv.Stats(sh.Stats().Seq)}, nil
}

func (s *shardService) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	v, seq, ok, err := sh.Get(req.Key)
	if err != nil {
		return nil, transfer.Errorf(codes.Internal, 0, "%v", err)
	}
	return &pb.GetResponse{Found: ok, Value: v, Seqno: int64(seq)}, nil
}

func (s *shardService) Flush(ctx context.Context, req *pb.FlushRequest) (*pb.FlushResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	if req.GlobalCheckpoint != nil {
		sh.SetGlobalCheckpoint(seqno.SeqNo(*req.GlobalCheckpoint))
	}
	if err := sh.Flush(); err != nil {
		return nil, transfer.Errorf(codes.Internal, 0, "flush: %v", err)
	}
	return &pb.FlushResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}

func (s *shardService) Merge(ctx context.Context, req *pb.MergeRequest) (*pb.MergeResponse, error) {
	sh, err := s.writable(req.Shard)
	if err != nil {
		return nil, err
	}
	if err := sh.Merge(); err != nil {
		return nil, transfer.Errorf(codes.Internal, 0, "merge: %v", err)
	}
	return &pb.MergeResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}

func (s *shardService) Stats(ctx context.Context, req *pb.StatsRequest) (*pb.StatsResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	return &pb.StatsResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}

func (s *shardService) Digest(ctx context.Context, req *pb.DigestRequest) (*pb.DigestResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	st := sh.Stats()
	d, err := sh.Digest()
	if err != nil {
		return nil, transfer.Errorf(codes.Internal, 0, "digest: %v", err)
	}
	return &pb.DigestResponse{Digest: d, HistoryUuid: st.HistoryUUID, Seqno: pbconv.Stats(st.Seq)}, nil
}

func (s *shardService) Promote(ctx context.Context, req *pb.PromoteRequest) (*pb.PromoteResponse, error) {
	sh, err := s.writable(req.Shard)
	if err != nil {
		return nil, err
	}
	if err := sh.Promote(); err != nil {
		return nil, transfer.Errorf(codes.Internal, 0, "promote: %v", err)
	}
	return &pb.PromoteResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}
