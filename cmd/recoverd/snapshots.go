package main

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine/docapi"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// snapshotService implements SnapshotService on the node's repository.
type snapshotService struct {
	pb.UnimplementedSnapshotServiceServer
	repo     snapshot.Repository // nil: snapshots disabled
	shards   *embedded.Registry
	throttle *transfer.Throttle
	// deletionDelay is how long the blobs of a deleted snapshot stay
	// marked before they are deleted (--deletion-delay).
	deletionDelay time.Duration
	// recovering reports the shards a recovery is rebuilding on this node:
	// a snapshot of one would record a copy that is neither its old self
	// for long nor the source yet.
	recovering func() map[shardstore.ShardID]string

	mu        sync.Mutex
	uploading map[shardstore.ShardID]int // snapshots being created, per shard
}

// isUploading reports whether a snapshot of id is being created here: the
// cleanup leaves that shard's unfinished uploads alone meanwhile.
func (s *snapshotService) isUploading(id shardstore.ShardID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploading[id] > 0
}

func (s *snapshotService) track(id shardstore.ShardID, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uploading == nil {
		s.uploading = map[shardstore.ShardID]int{}
	}
	if s.uploading[id] += d; s.uploading[id] <= 0 {
		delete(s.uploading, id)
	}
}

func (s *snapshotService) check() error {
	if s.repo == nil {
		return rpcerr.Errorf(codes.FailedPrecondition, rpcerr.NoReason, "no snapshot repository is configured on this node (--repo)")
	}
	return nil
}

func info(m *snapshot.Manifest) *pb.SnapshotInfo {
	return &pb.SnapshotInfo{Id: m.ID, Shard: pbconv.ShardID(m.Shard), StartTime: pbconv.Time(m.StartTime),
		Commit: pbconv.CommitData(m.Commit), Files: pbconv.Files(m.FileMetas()), TotalBytes: m.TotalBytes()}
}

func (s *snapshotService) CreateSnapshot(ctx context.Context, req *pb.CreateSnapshotRequest) (*pb.CreateSnapshotResponse, error) {
	var requests snapshot.RequestCounter
	ctx = snapshot.CountRequests(ctx, snapshot.KindSnapshot, &requests)
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.shards == nil {
		return nil, rpcerr.Errorf(codes.FailedPrecondition, rpcerr.NoReason,
			"this node recovers the shards of an engine process (--engine); snapshots of them are not created through it yet")
	}
	sh, err := docapi.New(s.shards).Shard(req.Shard)
	if err != nil {
		return nil, err
	}
	if s.recovering != nil {
		if rid, ok := s.recovering()[sh.ID()]; ok {
			return nil, rpcerr.Errorf(codes.FailedPrecondition, pb.ErrorReason_RECOVERY_RUNNING,
				"shard %s is being recovered by %s; snapshot it once the recovery is done (a snapshot now could shadow a good one)", sh.ID(), rid)
		}
	}
	opts := snapshot.CreateOptions{}
	if s.throttle != nil {
		opts.Throttle = func(ctx context.Context, n int) error { _, err := s.throttle.WaitN(ctx, n); return err }
	}
	start := time.Now()
	s.track(sh.ID(), 1)
	defer s.track(sh.ID(), -1)
	res, err := snapshot.Create(ctx, s.repo, sh, opts)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.CreateSnapshotResponse{Snapshot: info(res.Manifest), UploadedFiles: int64(res.UploadedFiles), UploadedBytes: res.UploadedBytes,
		ReusedFiles: int64(res.ReusedFiles), ReusedBytes: res.ReusedBytes, Took: durationpb.New(time.Since(start)),
		RepositoryRequests: pbconv.RepositoryRequests(requests.Tally())}, nil
}

func (s *snapshotService) ListSnapshots(ctx context.Context, req *pb.ListSnapshotsRequest) (*pb.ListSnapshotsResponse, error) {
	ctx = snapshot.CountRequests(ctx, snapshot.KindSnapshot, nil)
	if err := s.check(); err != nil {
		return nil, err
	}
	id, err := pbconv.ShardIDFromPB(req.Shard)
	if err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "shard: %v", err)
	}
	entries, err := snapshot.List(ctx, s.repo, id)
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

func (s *snapshotService) DeleteSnapshot(ctx context.Context, req *pb.DeleteSnapshotRequest) (*pb.DeleteSnapshotResponse, error) {
	ctx = snapshot.CountRequests(ctx, snapshot.KindSnapshot, nil)
	if err := s.check(); err != nil {
		return nil, err
	}
	id, err := pbconv.ShardIDFromPB(req.Shard)
	if err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "shard: %v", err)
	}
	if err := snapshot.ValidateSnapshotID(req.SnapshotId); err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "snapshot id: %v", err)
	}
	if _, err := snapshot.Delete(ctx, s.repo, id, req.SnapshotId, snapshot.DeleteOptions{Delay: s.deletionDelay}); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.DeleteSnapshotResponse{}, nil
}
