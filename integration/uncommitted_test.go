package integration

import (
	"errors"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/shardstore"
)

// TestFailedRecoveryLeavesNoShard: a recovery onto a node that does not
// hold the shard creates no shard there until it publishes. While it runs
// the shard is not listed, not served to peers, and a snapshot of it is
// refused (FailedPrecondition); when it fails (the source frozen past the
// retry budget) nothing of it is left. So no empty copy with a new history
// can be snapshotted, become the latest snapshot, shadow the good one and
// have `gc --keep 1` delete that.
func TestFailedRecoveryLeavesNoShard(t *testing.T) {
	c := newCluster(t)
	// The source's throttle keeps what it has sent ahead of the target small:
	// once it freezes, no more bytes arrive.
	n1 := c.node("n1", "--throttle", "2MB")
	n2 := c.node("n2")
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	for i := 0; i < 4; i++ { // ~8 MB: seconds at n2's throttle
		index(t, n1, 500, 4096, uint64(i))
		flush(t, n1)
	}
	good := mustv(n1.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID}))(t).Snapshot.Id

	id := startRecovery(t, n2, n1.PeerAddr, &pb.RecoveryOptions{UseSnapshots: new(bool)})
	stream := mustv(n2.rec.WatchRecovery(ctxT(t), &pb.WatchRecoveryRequest{Id: id, MinInterval: durationpb.New(20 * time.Millisecond)}))(t)
	for {
		r := mustv(stream.Recv())(t)
		if r.Recovery.Stage >= pb.Stage_STAGE_DONE {
			t.Fatalf("recovery ended %v before the checks: %s", r.Recovery.Stage, r.Recovery.Error)
		}
		if r.Recovery.GetTotals().GetFromPeer().GetRecoveredBytes() > 0 {
			break
		}
	}
	// The source freezes mid-copy: the recovery fails once its retry
	// budget is spent. Until then it runs, and the shard is none of n2's.
	n1.Pause()
	if l := mustv(n2.shard.ListShards(ctxT(t), &pb.ListShardsRequest{}))(t); len(l.Shards) != 0 {
		t.Fatalf("n2 lists %v while the recovery creating it runs", l.Shards)
	}
	if _, err := n2.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("snapshot of the shard being recovered: %v, want FailedPrecondition", err)
	}
	if _, err := peerClient(t, n2).GetShardMetadata(ctxT(t), &pb.GetShardMetadataRequest{Shard: shardID}); status.Code(err) != codes.NotFound {
		t.Fatalf("n2 serves the shard it is recovering to peers: %v, want NotFound", err)
	}
	if _, err := n2.shard.Index(ctxT(t), &pb.IndexRequest{Shard: shardID, Docs: []*pb.Doc{{Key: "k", Value: []byte("v")}}}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a write to the shard being created: %v, want FailedPrecondition", err)
	}
	r := waitRecovery(t, n2, id)
	n1.Resume()
	requireFailed(t, r)
	for _, st := range r.Stages {
		if st.Stage >= pb.Stage_STAGE_FINALIZE {
			t.Fatalf("the files were all copied before the source froze (stage %v): nothing tested", st.Stage)
		}
	}

	if l := mustv(n2.shard.ListShards(ctxT(t), &pb.ListShardsRequest{}))(t); len(l.Shards) != 0 {
		t.Fatalf("after the failed recovery n2 lists %v", l.Shards)
	}
	if st := stateOf(t, n2, shardID); st.Exists {
		t.Fatalf("after the failed recovery n2 holds the shard: %v", st)
	}
	if _, err := os.Stat(shardstore.Dir(n2.Data, shardstore.ShardID{Index: shardID.Index, Shard: int(shardID.Shard)})); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed recovery left its shard directory: %v", err)
	}
	if _, err := n2.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID}); status.Code(err) != codes.NotFound {
		t.Fatalf("snapshot of the shard after the failed recovery: %v, want NotFound", err)
	}
	snaps := mustv(n1.snap.ListSnapshots(ctxT(t), &pb.ListSnapshotsRequest{Shard: shardID}))(t).Snapshots
	if len(snaps) != 1 || snaps[0].Id != good {
		t.Fatalf("snapshots of the shard: %v, want only the good one %s", snaps, good)
	}
	requireNoLeftovers(t, n2)

	// The node recovers the shard for real afterwards.
	requireDone(t, recoverOnto(t, n2, n1, &pb.RecoveryOptions{UseSnapshots: new(bool)}))
	requireSameCopy(t, n1, n2)
}
