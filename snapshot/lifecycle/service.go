package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// ServiceConfig is what the snapshot service of a node needs.
type ServiceConfig struct {
	// Repo is the node's repository; nil: snapshots are disabled and every
	// call answers FailedPrecondition.
	Repo snapshot.Repository
	// Engine holds the node's shards: a snapshot pins and reads a commit
	// through the engine contract.
	Engine engine.Engine
	// Throttle, when set, is the node-wide bandwidth budget every upload
	// byte waits for (the budget recoveries share).
	Throttle func(ctx context.Context, n int) error
	// MaxUploads bounds the snapshots being created at once on the node,
	// asked for or scheduled (0: no bound); more wait their turn.
	MaxUploads int
	// DeletionDelay is how long the blobs of a deleted snapshot stay
	// marked before they are deleted (--deletion-delay).
	DeletionDelay time.Duration
	// Recovering reports the shards a recovery is rebuilding on this node:
	// a snapshot of one would record a copy that is neither its old self
	// for long nor the source yet.
	Recovering func() map[shardstore.ShardID]string
	// Metrics counts snapshots (nil: not counted).
	Metrics *Metrics
	Logger  *slog.Logger
}

// Service implements pb.SnapshotServiceServer on the node's repository,
// and creates the snapshots the policy schedules.
type Service struct {
	pb.UnimplementedSnapshotServiceServer
	cfg    ServiceConfig
	slots  chan struct{} // nil: no bound
	queued atomic.Int32  // creations waiting for a slot

	mu        sync.Mutex
	uploading map[shardstore.ShardID]int // snapshots being created, per shard
	policy    *Policy                    // set by NewPolicy
}

// NewService returns the snapshot service of a node.
func NewService(cfg ServiceConfig) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, uploading: map[shardstore.ShardID]int{}}
	if cfg.MaxUploads > 0 {
		s.slots = make(chan struct{}, cfg.MaxUploads)
	}
	return s
}

// IsUploading reports whether a snapshot of id is being created here: the
// cleanup leaves that shard's unfinished uploads alone meanwhile.
func (s *Service) IsUploading(id shardstore.ShardID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploading[id] > 0
}

func (s *Service) track(id shardstore.ShardID, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uploading[id] += d; s.uploading[id] <= 0 {
		delete(s.uploading, id)
	}
}

// Queued is the number of snapshot creations waiting for an upload slot
// (MaxUploads).
func (s *Service) Queued() int { return int(s.queued.Load()) }

// ErrRecoveryRunning is the refusal to snapshot a shard a recovery is
// rebuilding on this node.
var ErrRecoveryRunning = errors.New("lifecycle: shard being recovered")

// Created is what one snapshot creation did.
type Created struct {
	*snapshot.CreateResult
	Took time.Duration
	// Requests counts the repository requests it sent.
	Requests snapshot.RequestTally
}

// Create snapshots the current commit of a shard of the node, within the
// node's upload slots and throttle; trigger ("api", "policy") labels its
// metrics. Errors: ErrRecoveryRunning, the engine's (the shard cannot be
// had) and snapshot.Create's.
func (s *Service) Create(ctx context.Context, id shardstore.ShardID, trigger string) (*Created, error) {
	if s.cfg.Repo == nil {
		return nil, errors.New("lifecycle: no snapshot repository is configured")
	}
	if err := s.recovering(id); err != nil {
		return nil, err
	}
	sh, err := s.cfg.Engine.Shard(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.slots != nil {
		s.queued.Add(1)
		select {
		case s.slots <- struct{}{}:
			s.queued.Add(-1)
			defer func() { <-s.slots }()
		case <-ctx.Done():
			s.queued.Add(-1)
			return nil, context.Cause(ctx)
		}
	}
	var requests snapshot.RequestCounter
	ctx = snapshot.CountRequests(ctx, snapshot.KindSnapshot, &requests)
	start := time.Now()
	s.track(id, 1)
	defer s.track(id, -1)
	res, err := snapshot.Create(ctx, s.cfg.Repo, sh, snapshot.CreateOptions{Throttle: s.cfg.Throttle})
	took := time.Since(start)
	s.cfg.Metrics.observe(trigger, res, took, err)
	if err != nil {
		return nil, err
	}
	return &Created{CreateResult: res, Took: took, Requests: requests.Tally()}, nil
}

func (s *Service) recovering(id shardstore.ShardID) error {
	if s.cfg.Recovering == nil {
		return nil
	}
	if rid, ok := s.cfg.Recovering()[id]; ok {
		return fmt.Errorf("%w: shard %s is being recovered by %s; snapshot it once the recovery is done (a snapshot now could shadow a good one)", ErrRecoveryRunning, id, rid)
	}
	return nil
}

func (s *Service) check() error {
	if s.cfg.Repo == nil {
		return rpcerr.Errorf(codes.FailedPrecondition, rpcerr.NoReason, "no snapshot repository is configured on this node (--repo)")
	}
	return nil
}

func shardOf(m *pb.ShardId) (shardstore.ShardID, error) {
	id, err := pbconv.ShardIDFromPB(m)
	if err != nil {
		return id, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "shard: %v", err)
	}
	return id, nil
}

func info(m *snapshot.Manifest) *pb.SnapshotInfo {
	return &pb.SnapshotInfo{Id: m.ID, Shard: pbconv.ShardID(m.Shard), StartTime: pbconv.Time(m.StartTime),
		Commit: pbconv.CommitData(m.Commit), Files: pbconv.Files(m.FileMetas()), TotalBytes: m.TotalBytes()}
}

// createErr answers a creation that failed: the status table's code and
// reason (rpcerr), with what the error means on this node.
func createErr(id shardstore.ShardID, err error) error {
	switch {
	case errors.Is(err, ErrRecoveryRunning):
		return rpcerr.Errorf(codes.FailedPrecondition, pb.ErrorReason_RECOVERY_RUNNING, "%v", err)
	case errors.Is(err, engine.ErrNoCommit):
		return rpcerr.Statusf(err, "shard %s is being created by a recovery onto this node; it exists once the recovery publishes", id)
	case errors.Is(err, engine.ErrNotFound) && !errors.Is(err, snapshot.ErrNotFound):
		return rpcerr.Statusf(err, "shard %s does not exist on this node: %v", id, err)
	}
	return rpcerr.ToStatus(err)
}

func (s *Service) CreateSnapshot(ctx context.Context, req *pb.CreateSnapshotRequest) (*pb.CreateSnapshotResponse, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	id, err := shardOf(req.Shard)
	if err != nil {
		return nil, err
	}
	c, err := s.Create(ctx, id, TriggerAPI)
	if err != nil {
		return nil, createErr(id, err)
	}
	if s.policy != nil {
		s.policy.landed(id, c.Manifest)
	}
	return &pb.CreateSnapshotResponse{Snapshot: info(c.Manifest), UploadedFiles: int64(c.UploadedFiles), UploadedBytes: c.UploadedBytes,
		ReusedFiles: int64(c.ReusedFiles), ReusedBytes: c.ReusedBytes, Took: durationpb.New(c.Took),
		RepositoryRequests: pbconv.RepositoryRequests(c.Requests)}, nil
}

func (s *Service) ListSnapshots(ctx context.Context, req *pb.ListSnapshotsRequest) (*pb.ListSnapshotsResponse, error) {
	ctx = snapshot.CountRequests(ctx, snapshot.KindSnapshot, nil)
	if err := s.check(); err != nil {
		return nil, err
	}
	id, err := shardOf(req.Shard)
	if err != nil {
		return nil, err
	}
	entries, err := snapshot.List(ctx, s.cfg.Repo, id)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	resp := &pb.ListSnapshotsResponse{}
	for _, e := range entries {
		if e.Manifest != nil {
			resp.Snapshots = append(resp.Snapshots, info(e.Manifest))
		}
	}
	return resp, nil
}

func (s *Service) DeleteSnapshot(ctx context.Context, req *pb.DeleteSnapshotRequest) (*pb.DeleteSnapshotResponse, error) {
	ctx = snapshot.CountRequests(ctx, snapshot.KindSnapshot, nil)
	if err := s.check(); err != nil {
		return nil, err
	}
	id, err := shardOf(req.Shard)
	if err != nil {
		return nil, err
	}
	if err := snapshot.ValidateSnapshotID(req.SnapshotId); err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "snapshot id: %v", err)
	}
	if _, err := snapshot.Delete(ctx, s.cfg.Repo, id, req.SnapshotId, snapshot.DeleteOptions{Delay: s.cfg.DeletionDelay}); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.DeleteSnapshotResponse{}, nil
}
