package integration

import (
	"testing"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// policyArgs run the snapshot policy on a node: every interval, primaries
// only, the snapshot retention lease on, op logs trimmed to 10 ops below
// the checkpoint but for leases.
func policyArgs(interval string, extra ...string) []string {
	return append([]string{"--snapshot-interval", interval, "--snapshot-jitter", "0", "--snapshot-scope", "primaries",
		"--snapshot-lease-max-ops", "100000", "--retain-ops", "10"}, extra...)
}

// policyOf asks a node for its snapshot policy's view of the test shard.
func policyOf(t *testing.T, n *node) *pb.ShardSnapshotStatus {
	t.Helper()
	resp := mustv(n.snap.GetSnapshotPolicy(ctxT(t), &pb.GetSnapshotPolicyRequest{Shard: shardID}))(t)
	if len(resp.Shards) == 0 {
		return nil
	}
	return resp.Shards[0]
}

// TestSnapshotLeaseFailover is the failover case with writes going on
// after the last snapshot. n1 (primary) is snapshotted by its policy; n2
// (replica) holds the snapshot retention lease from that snapshot's
// checkpoint + 1, so its op log keeps every op above it although
// --retain-ops is 10. Writes go on past the snapshot, n1 dies, n2 is
// promoted and takes more writes (its own next scheduled snapshot is an
// hour away). The new replica n3 is built from n1's snapshot plus n2's
// ops, with no file byte read off n2.
func TestSnapshotLeaseFailover(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1", policyArgs("300ms")...)
	n2 := c.node("n2", policyArgs("1h")...)
	n3 := c.node("n3")
	inSync(t, n1, n2, 4000, 4, false)
	gcp := stats(t, n1).Seqno.LocalCheckpoint

	// The policy snapshots n1 at its checkpoint; n2's lease follows.
	var snap *pb.SnapshotInfo
	eventually(t, time.Minute, "n1's policy snapshots the synced commit", func() bool {
		list := mustv(n1.snap.ListSnapshots(ctxT(t), &pb.ListSnapshotsRequest{Shard: shardID}))(t).Snapshots
		for _, s := range list {
			if s.Commit.GlobalCheckpoint >= gcp && (snap == nil || s.Id > snap.Id) {
				snap = s
			}
		}
		return snap != nil
	})
	eventually(t, time.Minute, "n2 holds the snapshot retention lease", func() bool {
		st := policyOf(t, n2)
		return st != nil && st.LeaseRetainingSeqno >= gcp+1 && !st.Primary
	})
	if st := policyOf(t, n1); st.LastResult != "success" || !st.Primary || st.NextRun == nil {
		t.Fatalf("n1's policy status %v: want a successful run, a primary and a next run", st)
	}

	// Writes after the snapshot, replicated, flushed (n2's op log is
	// trimmed to 10 ops below its checkpoint but for the lease).
	replicate(t, n2, index(t, n1, 300, 512, 77))
	gcp = stats(t, n1).Seqno.LocalCheckpoint
	flush(t, n1, gcp)
	flush(t, n2, gcp)
	promote(t, n1, n2)
	indexFrom(t, n2, 200, 512, 78, 100000)
	flush(t, n2)
	leaseFrom := policyOf(t, n2).LeaseRetainingSeqno
	if got := stats(t, n2).MinRetainedSeqno; got > leaseFrom {
		t.Fatalf("n2 retains ops from %d, above its snapshot lease (%d)", got, leaseFrom)
	}

	r := recoverOnto(t, n3, n2, nil)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_SNAPSHOT)
	tot := r.GetTotals()
	if tot.GetFromPeer().GetRecoveredBytes() != 0 {
		t.Fatalf("%d file bytes read off the new primary, want 0 (snapshot %s plus ops): %v", tot.GetFromPeer().GetRecoveredBytes(), r.GetPlan().GetSnapshotId(), tot)
	}
	if r.GetOps().GetReplayed() < 200 {
		t.Fatalf("%d ops replayed, want at least the 200 written after the failover", r.GetOps().GetReplayed())
	}
	requireSameCopy(t, n2, n3)
	requireNoLeftovers(t, n3)
}
