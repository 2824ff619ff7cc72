package integration

import (
	"strings"
	"testing"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// MinIO frozen (SIGSTOP) while a plan of 40+ snapshot files downloads: its
// connections stay open and nothing answers, so every request in flight
// runs into the S3 timeout. A frozen repository is one failure, not one
// per file: the first download that gives up stops the others, and every
// file left comes from the source at once. The copy is done within about
// one repository failure (an S3 timeout, retried for the retry budget)
// plus the time of the peer copy, not one failure per round of
// --max-snapshot-downloads files.

const (
	freezeS3Timeout   = time.Second
	freezeRetryBudget = 3 * time.Second // the cluster's --retry-budget
	freezeThrottle    = 1_000_000       // --throttle 1MB, bytes/s
	freezeDownloads   = 4
)

func freezeNodeArgs() []string {
	return []string{"--throttle", "1MB", "--max-snapshot-downloads", "4", "--s3-timeout", freezeS3Timeout.String()}
}

// freezeDuring starts a recovery of shardID onto target from source,
// freezes MinIO once it has downloaded its first bytes, waits for it to
// end and thaws MinIO. It returns the recovery, when MinIO froze and the
// target's metrics from before the recovery.
func freezeDuring(t *testing.T, c *cluster, target, source *node) (*pb.Recovery, time.Time, metrics) {
	t.Helper()
	before := scrape(t, target)
	id := startRecovery(t, target, source.PeerAddr, nil)
	waitFor(t, target, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromSnapshot().GetRecoveredBytes() > 0 })
	c.minio.Pause()
	defer c.minio.Resume() // also when the test fails
	frozen := time.Now()
	r := waitRecovery(t, target, id)
	requireDone(t, r)
	return r, frozen, before
}

// requireOneRepositoryFailure checks that the frozen repository cost the
// recovery one failure: one fallback, no more failed downloads than were
// in flight, the fallback within three repository failures of the freeze,
// and the end within that plus twice the peer copy at the throttle's rate.
func requireOneRepositoryFailure(t *testing.T, r *pb.Recovery, from pb.PlanKind, frozen time.Time, before, after metrics) {
	t.Helper()
	if len(r.Fallbacks) != 1 || r.Fallbacks[0].FromKind != from || r.Fallbacks[0].ToKind != pb.PlanKind_PLAN_KIND_PEER {
		t.Fatalf("fallbacks %v: want exactly one, %v -> peer", r.Fallbacks, from)
	}
	fb := r.Fallbacks[0]
	if errs := delta(before, after, "recoverd_snapshot_download_errors_total"); errs < 1 || errs > freezeDownloads {
		t.Fatalf("%v snapshot downloads failed; want between 1 and the %d in flight when MinIO froze (none may start after the first failure)", errs, freezeDownloads)
	}
	failure := freezeS3Timeout + freezeRetryBudget
	toFallback := fb.Time.AsTime().Sub(frozen)
	peerCopy := time.Duration(float64(r.GetTotals().GetFromPeer().GetBytes()) / freezeThrottle * float64(time.Second))
	total := r.EndTime.AsTime().Sub(frozen)
	t.Logf("MinIO froze; fallback %v later (one repository failure: %v), done %v after the freeze; %d bytes from the peer (%v at the throttle); cause: %s",
		toFallback.Round(time.Millisecond), failure, total.Round(time.Millisecond), r.GetTotals().GetFromPeer().GetBytes(), peerCopy.Round(time.Millisecond), fb.Cause)
	if toFallback > 3*failure {
		t.Fatalf("the fallback came %v after MinIO froze, more than three repository failures (%v each)", toFallback, failure)
	}
	if total > 3*failure+2*peerCopy {
		t.Fatalf("the copy was done %v after MinIO froze; one repository failure (%v) plus the peer copy (%v) should be enough", total, failure, peerCopy)
	}
	requireMoved(t, before, after, 1, "recoverd_fallbacks_total", "cause", "unavailable")
}

// TestRepositoryFrozenDuringHybridPlan: 41 files from the snapshot and one
// from the source; MinIO freezes after the first bytes.
func TestRepositoryFrozenDuringHybridPlan(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1", "--retain-ops", "0")
	n2 := c.node("n2", freezeNodeArgs()...)
	seed(t, n1, 41, 50, 2048, 0)
	mustv(n1.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID}))(t)
	index(t, n1, 50, 2048, 5) // the newest segment comes from the source
	flush(t, n1)
	src := stateOf(t, n1, shardID)
	r, frozen, before := freezeDuring(t, c, n2, n1)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_HYBRID)
	if planned := len(r.GetPlan().GetFromSnapshot()); planned < 40 {
		t.Fatalf("the hybrid plan downloads %d files; the test needs 40 or more", planned)
	}
	requireOneRepositoryFailure(t, r, pb.PlanKind_PLAN_KIND_HYBRID, frozen, before, scrape(t, n2))
	if !strings.Contains(r.Fallbacks[0].Cause, "repository failed") {
		t.Fatalf("fallback cause %q: want the repository named as what failed", r.Fallbacks[0].Cause)
	}
	tot := r.GetTotals()
	if tot.GetFromPeer().GetFiles()+tot.GetFromSnapshot().GetFiles() != 42 || tot.GetFromPeer().GetFiles() < 2 {
		t.Fatalf("files by source: %v", tot)
	}
	finalChecks(t, r, n1, n2, src, shardState{})
}

// TestRepositoryFrozenDuringSnapshotPlan: the failover case with 41
// snapshot files; MinIO freezes after the first bytes and the snapshot
// plan falls back, as a whole, to its peer plan.
func TestRepositoryFrozenDuringSnapshotPlan(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node("n1"), c.node("n2")
	n3 := c.node("n3", freezeNodeArgs()...)
	failoverSegments(t, n1, n2, 4100, 41, true)
	src := stateOf(t, n2, shardID)
	r, frozen, before := freezeDuring(t, c, n3, n2)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	if r.GetTotals().GetFromPeer().GetRecoveredBytes() != r.GetTotals().GetTotal().GetBytes() {
		t.Fatalf("after the fallback every byte must come from the peer: %v", r.GetTotals())
	}
	after := scrape(t, n3)
	requireOneRepositoryFailure(t, r, pb.PlanKind_PLAN_KIND_SNAPSHOT, frozen, before, after)
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
	finalChecks(t, r, n2, n3, src, shardState{})
}
