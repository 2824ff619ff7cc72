package integration

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// One test per plan kind, each with real recoverd processes and a real
// MinIO, checking the copy and where its bytes came from.

func TestPeerPlan(t *testing.T) { bothModes(t, testPeerPlan) }

func testPeerPlan(t *testing.T, c *cluster) {
	n1, n2 := c.node("n1"), c.node("n2")
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	for i := 0; i < 3; i++ {
		index(t, n1, 2000, 1024, uint64(i))
		flush(t, n1)
	}
	index(t, n1, 300, 1024, 7) // above the commit: replayed as ops
	r := recoverOnto(t, n2, n1, nil)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	tot := r.GetTotals()
	if tot.GetFromPeer().GetRecoveredBytes() != tot.GetTotal().GetBytes() || tot.GetFromSnapshot().GetBytes() != 0 {
		t.Fatalf("bytes: %v", tot)
	}
	if r.GetOps().GetReplayed() != 300 {
		t.Fatalf("ops replayed %d, want 300", r.GetOps().GetReplayed())
	}
	requireSameCopy(t, n1, n2)
	requireNoLeftovers(t, n2)
}

func TestOpsOnlyPlan(t *testing.T) { bothModes(t, testOpsOnlyPlan) }

func testOpsOnlyPlan(t *testing.T, c *cluster) {
	n1, n2 := c.node("n1"), c.node("n2")
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	index(t, n1, 3000, 512, 1)
	flush(t, n1)
	requireDone(t, recoverOnto(t, n2, n1, nil))
	// n2 falls behind: 700 more ops on the primary, not replicated.
	index(t, n1, 700, 512, 2)
	flush(t, n1)
	r := recoverOnto(t, n2, n1, nil)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_OPS_ONLY)
	if b := r.GetTotals().GetFromPeer().GetBytes() + r.GetTotals().GetFromSnapshot().GetBytes(); b != 0 {
		t.Fatalf("ops-only moved %d file bytes", b)
	}
	if r.GetOps().GetReplayed() != 700 {
		t.Fatalf("ops replayed %d, want 700", r.GetOps().GetReplayed())
	}
	requireSameCopy(t, n1, n2)
}

func TestSnapshotPlanAfterFailover(t *testing.T) { bothModes(t, testSnapshotPlanAfterFailover) }

func testSnapshotPlanAfterFailover(t *testing.T, c *cluster) {
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")
	snapID := failover(t, n1, n2, 8000)
	r := recoverOnto(t, n3, n2, nil)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_SNAPSHOT)
	if r.GetPlan().GetSnapshotId() != snapID {
		t.Fatalf("snapshot %s used, want %s", r.GetPlan().GetSnapshotId(), snapID)
	}
	tot := r.GetTotals()
	if tot.GetFromPeer().GetRecoveredBytes() != 0 || tot.GetFromSnapshot().GetRecoveredBytes() != tot.GetTotal().GetBytes() {
		t.Fatalf("a failover snapshot recovery must read no file byte off the source: %v", tot)
	}
	requireSameCopy(t, n2, n3)
	if stats(t, n3).PrimaryTerm != stats(t, n2).PrimaryTerm {
		t.Fatal("the recovered copy did not take the new primary's term")
	}
	requireNoLeftovers(t, n3)
}

func TestOlderSnapshotPlusOps(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node("n1"), c.node("n2")
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	for i := 0; i < 3; i++ {
		index(t, n1, 2000, 2048, uint64(i))
		flush(t, n1)
	}
	gcp := stats(t, n1).Seqno.LocalCheckpoint
	flush(t, n1, gcp)
	mustv(n1.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID}))(t)
	// The source moves on: a merge rewrites every file and 200 more ops come.
	index(t, n1, 200, 2048, 9)
	mustv(n1.shard.Merge(ctxT(t), &pb.MergeRequest{Shard: shardID}))(t)
	r := recoverOnto(t, n2, n1, nil)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_SNAPSHOT)
	if r.GetTotals().GetFromPeer().GetRecoveredBytes() != 0 {
		t.Fatalf("files came from the peer: %v", r.GetTotals())
	}
	if r.GetOps().GetReplayed() != 200 {
		t.Fatalf("ops replayed %d, want the 200 above the snapshot", r.GetOps().GetReplayed())
	}
	requireSameCopy(t, n1, n2)
}

func TestHybridPlan(t *testing.T) { bothModes(t, testHybridPlan) }

func testHybridPlan(t *testing.T, c *cluster) {
	// No op history kept beyond the checkpoint: an older snapshot cannot be
	// brought up to date with ops, so the newer files come from the peer.
	n1, n2 := c.node("n1", "--retain-ops", "0"), c.node("n2")
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	for i := 0; i < 3; i++ {
		index(t, n1, 1500, 2048, uint64(i))
		flush(t, n1)
	}
	mustv(n1.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID}))(t)
	index(t, n1, 1000, 2048, 5)
	flush(t, n1)
	r := recoverOnto(t, n2, n1, nil)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_HYBRID)
	tot := r.GetTotals()
	if tot.GetFromSnapshot().GetFiles() != 3 || tot.GetFromPeer().GetFiles() != 1 {
		t.Fatalf("hybrid split: %v", tot)
	}
	if tot.GetFromSnapshot().GetRecoveredBytes()+tot.GetFromPeer().GetRecoveredBytes() != tot.GetTotal().GetBytes() {
		t.Fatalf("bytes do not add up: %v", tot)
	}
	requireSameCopy(t, n1, n2)
}

// TestSnapshotFallbackWhenMinIOStops: MinIO is killed while the snapshot
// plan downloads; the recovery cancels the downloads, drops its staging and
// completes from the peer.
func TestSnapshotFallbackWhenMinIOStops(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node("n1"), c.node("n2")
	n3 := c.node("n3", "--throttle", "1MB", "--max-snapshot-downloads", "2")
	failover(t, n1, n2, 8000)
	resp := mustv(n3.rec.StartRecovery(ctxT(t), &pb.StartRecoveryRequest{Shard: shardID, SourceAddress: n2.PeerAddr}))(t)
	waitFor(t, n3, resp.Recovery.Id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromSnapshot().GetRecoveredBytes() > 0 })
	c.minio.Kill()
	r := waitRecovery(t, n3, resp.Recovery.Id)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	if len(r.Fallbacks) != 1 || r.Fallbacks[0].FromKind != pb.PlanKind_PLAN_KIND_SNAPSHOT {
		t.Fatalf("fallbacks: %v", r.Fallbacks)
	}
	if r.GetTotals().GetFromPeer().GetRecoveredBytes() != r.GetTotals().GetTotal().GetBytes() {
		t.Fatalf("after the fallback every byte must come from the peer: %v", r.GetTotals())
	}
	requireSameCopy(t, n2, n3)
	requireNoLeftovers(t, n3)
}

func waitFor(t *testing.T, n *node, id string, cond func(*pb.Recovery) bool) *pb.Recovery {
	t.Helper()
	stream := mustv(n.rec.WatchRecovery(ctxT(t), &pb.WatchRecoveryRequest{Id: id, MinInterval: durationpb.New(50 * time.Millisecond)}))(t)
	for {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("recovery %s ended before the condition held: %v", id, err)
		}
		if cond(r.Recovery) {
			return r.Recovery
		}
		if r.Recovery.Stage >= pb.Stage_STAGE_DONE {
			t.Fatalf("recovery %s ended (%v) before the condition held: %s", id, r.Recovery.Stage, r.Recovery.Error)
		}
	}
}

// TestWritesRefusedWhileRecovering: a shard being rebuilt takes no primary
// writes (the publish would silently replace them), but the copy is
// writable again once the recovery is done.
func TestWritesRefusedWhileRecovering(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node("n1"), c.node("n2", "--throttle", "2MB")
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	index(t, n1, 4000, 1024, 1)
	flush(t, n1)
	resp := mustv(n2.rec.StartRecovery(ctxT(t), &pb.StartRecoveryRequest{Shard: shardID, SourceAddress: n1.PeerAddr}))(t)
	waitFor(t, n2, resp.Recovery.Id, func(r *pb.Recovery) bool { return r.GetTotals().GetTotal().GetRecoveredBytes() > 0 })
	_, err := n2.shard.Index(ctxT(t), &pb.IndexRequest{Shard: shardID, Docs: []*pb.Doc{{Key: "k", Value: []byte("v")}}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), resp.Recovery.Id) {
		t.Fatalf("write during the recovery: %v, want FailedPrecondition naming the recovery", err)
	}
	requireDone(t, waitRecovery(t, n2, resp.Recovery.Id))
	mustv(n2.shard.Index(ctxT(t), &pb.IndexRequest{Shard: shardID, Docs: []*pb.Doc{{Key: "k", Value: []byte("v")}}}))(t)
}
