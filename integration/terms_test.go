package integration

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// TestStaleTermReplicaAfterFailover: the old primary n1 (term 1) sent its
// last ops to n3 only and died. n2 is promoted (term 2), fills the hole it
// had with a no-op and gives the seqnos n3 holds to other ops. n3 takes no
// op of term 2 over its term-1 ops; a snapshot of n3 is never restored and
// n3 is never continued with ops-only; both a new copy and n3 end equal to
// the new primary, digest included.
func TestStaleTermReplicaAfterFailover(t *testing.T) {
	c := newCluster(t)
	n1, n2, n3, n4 := c.node("n1"), c.node("n2"), c.node("n3"), c.node("n4")
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	requireDone(t, recoverOnto(t, n2, n1, nil))
	requireDone(t, recoverOnto(t, n3, n1, nil))

	// Every copy in sync up to the global checkpoint.
	synced := index(t, n1, 1500, 512, 1)
	replicate(t, n2, synced)
	replicate(t, n3, synced)
	gcp := stats(t, n1).Seqno.LocalCheckpoint
	for _, n := range []*node{n1, n2, n3} {
		flush(t, n, gcp)
	}
	// The old primary's last ops: all to n3, some to n2 with a hole.
	last := index(t, n1, 400, 512, 2)
	mustv(n3.shard.Apply(ctxT(t), &pb.ApplyRequest{Shard: shardID, Ops: last}))(t)
	mustv(n2.shard.Apply(ctxT(t), &pb.ApplyRequest{Shard: shardID, Ops: append(append([]*pb.Op(nil), last[:50]...), last[51:100]...)}))(t)
	n1.Kill()

	st := mustv(n2.shard.Promote(ctxT(t), &pb.PromoteRequest{Shard: shardID}))(t).Stats
	if st.PrimaryTerm != 2 || st.Seqno.LocalCheckpoint != st.Seqno.MaxSeqno || st.Seqno.MaxSeqno != gcp+100 {
		t.Fatalf("after promotion n2 is at term %d, checkpoint %d, max seqno %d; want term 2 and both at %d (the hole filled)",
			st.PrimaryTerm, st.Seqno.LocalCheckpoint, st.Seqno.MaxSeqno, gcp+100)
	}
	// Term 2 gives seqnos n3 holds under term 1 to other ops, and goes past.
	newer := index(t, n2, 700, 512, 3)
	_, err := n3.shard.Apply(ctxT(t), &pb.ApplyRequest{Shard: shardID, Ops: newer})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "term") {
		t.Fatalf("n3 took ops of term 2 over its term-1 ops above the global checkpoint: %v", err)
	}
	if st := stats(t, n3); st.PrimaryTerm != 1 {
		t.Fatalf("n3's term became %d from the ops it received", st.PrimaryTerm)
	}
	flush(t, n2, stats(t, n2).Seqno.LocalCheckpoint)
	flush(t, n3)
	stale := mustv(n3.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID}))(t).Snapshot.Id

	// A new copy: the stale snapshot (the latest) must not be restored.
	r := recoverOnto(t, n4, n2, nil)
	requireDone(t, r)
	if r.GetPlan().GetSnapshotId() == stale {
		t.Fatalf("n4 was built from snapshot %s of the stale replica; reasons:\n  %s", stale, strings.Join(r.GetPlan().GetReasons(), "\n  "))
	}
	requireReason(t, r, "of primary terms up to 1, older than the source's term 2")
	requireSameCopy(t, n2, n4)

	// The stale replica itself: never continued with ops-only.
	r = recoverOnto(t, n3, n2, nil)
	requireDone(t, r)
	if k := r.GetPlan().GetKind(); k == pb.PlanKind_PLAN_KIND_OPS_ONLY || r.GetPlan().GetSnapshotId() == stale {
		t.Fatalf("n3 recovered by %v (snapshot %q) over its term-1 ops; reasons:\n  %s", k, r.GetPlan().GetSnapshotId(), strings.Join(r.GetPlan().GetReasons(), "\n  "))
	}
	requireReason(t, r, "ops-only not possible: the target holds ops")
	requireSameCopy(t, n2, n3)
	if st := stats(t, n3); st.PrimaryTerm != 2 {
		t.Fatalf("the recovered copy is at term %d, the primary's is 2", st.PrimaryTerm)
	}
	// Back in sync: the new primary's next ops are taken.
	mustv(n3.shard.Apply(ctxT(t), &pb.ApplyRequest{Shard: shardID, Ops: index(t, n2, 10, 512, 4)}))(t)
}

func requireReason(t *testing.T, r *pb.Recovery, want string) {
	t.Helper()
	for _, line := range r.GetPlan().GetReasons() {
		if strings.Contains(line, want) {
			return
		}
	}
	t.Fatalf("no reason of the %v plan says %q:\n  %s", r.GetPlan().GetKind(), want, strings.Join(r.GetPlan().GetReasons(), "\n  "))
}
