package lifecycle

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/shardstore"
)

// TestServiceAnswers: SnapshotService's answers through the status table:
// a snapshot, an unknown shard, a bad name, a shard being recovered, no
// repository, and a list that holds the snapshot taken.
func TestServiceAnswers(t *testing.T) {
	repo := localRepo(t)
	n := newNode(t, repo, 20)
	ctx := context.Background()
	resp, err := n.svc.CreateSnapshot(ctx, &pb.CreateSnapshotRequest{Shard: &pb.ShardId{Index: "logs", Shard: 0}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.UploadedFiles == 0 || resp.Snapshot.Commit.MaxSeqno != 19 {
		t.Fatalf("answer %v", resp)
	}
	l, err := n.svc.ListSnapshots(ctx, &pb.ListSnapshotsRequest{Shard: &pb.ShardId{Index: "logs", Shard: 0}})
	if err != nil || len(l.Snapshots) != 1 || l.Snapshots[0].Id != resp.Snapshot.Id {
		t.Fatalf("list %v, %v", l, err)
	}
	check := func(what string, err error, code codes.Code, reason pb.ErrorReason, text string) {
		t.Helper()
		if status.Code(err) != code || reason != rpcerr.NoReason && rpcerr.Reason(err) != reason || !strings.Contains(status.Convert(err).Message(), text) {
			t.Errorf("%s: %v, want %v (%v) saying %q", what, err, code, reason, text)
		}
	}
	_, err = n.svc.CreateSnapshot(ctx, &pb.CreateSnapshotRequest{Shard: &pb.ShardId{Index: "nope", Shard: 7}})
	check("unknown shard", err, codes.NotFound, rpcerr.NoReason, "nope/7 does not exist on this node")
	_, err = n.svc.CreateSnapshot(ctx, &pb.CreateSnapshotRequest{Shard: &pb.ShardId{Index: "../etc", Shard: 0}})
	check("bad name", err, codes.InvalidArgument, rpcerr.NoReason, "shard")
	n.svc.cfg.Recovering = func() map[shardstore.ShardID]string { return map[shardstore.ShardID]string{testShard: "r-1"} }
	_, err = n.svc.CreateSnapshot(ctx, &pb.CreateSnapshotRequest{Shard: &pb.ShardId{Index: "logs", Shard: 0}})
	check("being recovered", err, codes.FailedPrecondition, pb.ErrorReason_RECOVERY_RUNNING, "being recovered by r-1")
	off := NewService(ServiceConfig{Engine: n.eng})
	_, err = off.CreateSnapshot(ctx, &pb.CreateSnapshotRequest{Shard: &pb.ShardId{Index: "logs", Shard: 0}})
	check("no repository", err, codes.FailedPrecondition, rpcerr.NoReason, "--repo")
	_, err = off.GetSnapshotPolicy(ctx, &pb.GetSnapshotPolicyRequest{})
	check("no policy", err, codes.FailedPrecondition, rpcerr.NoReason, "runs no snapshot policy")
}
