package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// The repository is MinIO in distributed erasure-coded mode: 4 servers on
// loopback, one drive each, one erasure set (2 data + 2 parity shards per
// object: reads need 2 servers, writes 3). The daemons talk to server 0,
// as they would to a load balancer in front of all four; killing server 0
// is the load balancer's business, so the servers lost here are the
// others. One lost server leaves the store its quorum: snapshots and
// downloads go on as if nothing happened. Three lost servers take it
// away: MinIO then holds reads and writes without answering, the S3
// timeout ends them, a download falls back to the peer and an upload
// fails, leaving no manifest.

// newDistributedCluster is newCluster on a distributed MinIO.
func newDistributedCluster(t *testing.T) (*cluster, *testutil.MinIOCluster) {
	t.Helper()
	mc := testutil.StartMinIOCluster(t, 4)
	bucket := mc.MakeBucket("recoverd")
	return &cluster{t: t, minio: mc.Servers[0],
		repo: fmt.Sprintf("s3://%s/snapshots?endpoint=%s&tls=false", bucket, mc.Endpoint()),
		env:  []string{"RECOVERD_S3_ACCESS_KEY=" + mc.AccessKey, "RECOVERD_S3_SECRET_KEY=" + mc.SecretKey}}, mc
}

const s3Requests = "recoverd_s3_requests_total"

// snapshotDuring snapshots shardID on n and runs fault once the snapshot
// has sent its first upload (and has not finished).
func snapshotDuring(t *testing.T, n *node, fault func()) (*pb.CreateSnapshotResponse, error) {
	t.Helper()
	before := scrape(t, n)
	type result struct {
		resp *pb.CreateSnapshotResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := n.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID})
		done <- result{resp, err}
	}()
	eventually(t, time.Minute, "the snapshot's first upload", func() bool {
		return delta(before, scrape(t, n), s3Requests, "op", "put", "kind", "snapshot") > 0
	})
	select {
	case r := <-done:
		t.Fatalf("the snapshot ended before the fault (%v): the test needs a slower upload", r.err)
	default:
	}
	fault()
	r := <-done
	return r.resp, r.err
}

// requireRequests checks that the node's request metric moved, for kind,
// by the counts a recovery or a snapshot reported.
func requireRequests(t *testing.T, before, after metrics, kind string, got *pb.RepositoryRequests) {
	t.Helper()
	for op, n := range map[string]int64{"list": got.GetList(), "get": got.GetGet(), "put": got.GetPut(), "head": got.GetHead(), "delete": got.GetDelete()} {
		if d := delta(before, after, s3Requests, "op", op, "kind", kind); d != float64(n) {
			t.Fatalf("%s{op=%q,kind=%q} moved by %v; the %s reported %d", s3Requests, op, kind, d, kind, n)
		}
	}
}

// manifests lists the manifest keys of shardID in the bucket.
func manifests(t *testing.T, c *cluster) []string {
	t.Helper()
	prefix := objectKey(snapshot.ManifestPrefix(shardstore.ShardID{Index: shardID.Index, Shard: int(shardID.Shard)}))
	var out []string
	for _, k := range listObjects(t, c) {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

// TestDistributedRepositoryLosesOneServer: a MinIO server dies in the
// middle of a snapshot upload, and another in the middle of a snapshot
// plan's download. The store keeps its quorum: both complete from the
// repository, without a fallback, and the recovered copy equals its
// source.
func TestDistributedRepositoryLosesOneServer(t *testing.T) {
	c, mc := newDistributedCluster(t)
	// 8 files of about 500 KB, moved at 2 MB/s: about 2 s each way.
	n1, n2 := c.node("n1", "--throttle", "2MB"), c.node("n2")
	n3 := c.node("n3", "--throttle", "2MB")
	inSync(t, n1, n2, 4000, 8, true)

	before := scrape(t, n1)
	resp, err := snapshotDuring(t, n1, func() { mc.Kill(1) })
	if err != nil {
		t.Fatalf("snapshot with one MinIO server of four killed: %v", err)
	}
	files := int64(len(resp.Snapshot.Files))
	rq := resp.RepositoryRequests
	t.Logf("snapshot of %d files with server 1 killed mid-upload: %d requests %v", files, rq.GetList()+rq.GetGet()+rq.GetPut()+rq.GetHead()+rq.GetDelete(), rq)
	if resp.UploadedFiles != files || rq.GetPut() < files+1 || rq.GetList() < 1 || rq.GetDelete() != 0 {
		t.Fatalf("snapshot uploaded %d of %d files with requests %v: want every file and the manifest put, lists, no delete", resp.UploadedFiles, files, rq)
	}
	requireRequests(t, before, scrape(t, n1), "snapshot", rq)
	mc.Restart(1)
	promote(t, n1, n2)

	src := stateOf(t, n2, shardID)
	before = scrape(t, n3)
	id := startRecovery(t, n3, n2.PeerAddr, nil)
	waitFor(t, n3, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromSnapshot().GetRecoveredBytes() > 0 })
	mc.Kill(2)
	r := waitRecovery(t, n3, id)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_SNAPSHOT)
	if r.GetPlan().GetSnapshotId() != resp.Snapshot.Id {
		t.Fatalf("recovered from snapshot %s, want %s", r.GetPlan().GetSnapshotId(), resp.Snapshot.Id)
	}
	if len(r.Fallbacks) != 0 || r.GetTotals().GetFromSnapshot().GetRecoveredBytes() != r.GetTotals().GetTotal().GetBytes() {
		t.Fatalf("the download fell back (%v) or read from the peer: %v", r.Fallbacks, r.GetTotals())
	}
	finalChecks(t, r, n2, n3, src, shardState{})
	after := scrape(t, n3)
	if d := after.sum("recoverd_fallbacks_total") - before.sum("recoverd_fallbacks_total"); d != 0 {
		t.Fatalf("recoverd_fallbacks_total moved by %v", d)
	}
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "snapshot", "result", "done")
	rq = r.RepositoryRequests
	t.Logf("recovery of %d files with server 2 killed mid-download (%d resumes): requests %v", len(r.Files), r.Resumes, rq)
	if rq.GetGet() < int64(len(r.Files))+1 || rq.GetList() < 1 || rq.GetPut() != 0 || rq.GetDelete() != 0 {
		t.Fatalf("recovery requests %v: want the manifest and every file read, lists, no put or delete", rq)
	}
	requireRequests(t, before, after, "recovery", rq)
}

// TestDistributedRepositoryLosesQuorum: three MinIO servers of four die in
// the middle of a snapshot plan's download, then (restarted, and killed
// again) in the middle of a snapshot upload. The download falls back to
// the peer and the copy equals its source; the upload fails with an error
// that says the repository is unavailable, and leaves no manifest.
func TestDistributedRepositoryLosesQuorum(t *testing.T) {
	c, mc := newDistributedCluster(t)
	n1 := c.node("n1")
	n2 := c.node("n2", "--throttle", "2MB", "--s3-timeout", "2s")
	n3 := c.node("n3", "--throttle", "2MB", "--s3-timeout", "1s")
	snapID := failoverSegments(t, n1, n2, 4000, 8, true)

	src := stateOf(t, n2, shardID)
	before := scrape(t, n3)
	id := startRecovery(t, n3, n2.PeerAddr, nil)
	waitFor(t, n3, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromSnapshot().GetRecoveredBytes() > 0 })
	mc.Kill(1, 2, 3)
	r := waitRecovery(t, n3, id)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	if len(r.Fallbacks) != 1 || r.Fallbacks[0].FromKind != pb.PlanKind_PLAN_KIND_SNAPSHOT || r.Fallbacks[0].ToKind != pb.PlanKind_PLAN_KIND_PEER {
		t.Fatalf("fallbacks %v: want one, snapshot -> peer", r.Fallbacks)
	}
	if cause := r.Fallbacks[0].Cause; !strings.Contains(cause, "repository unavailable") || !strings.Contains(strings.ToLower(cause), "quorum") {
		t.Fatalf("fallback cause %q: want the repository named unavailable, and the quorum", cause)
	}
	if r.GetTotals().GetFromPeer().GetRecoveredBytes() != r.GetTotals().GetTotal().GetBytes() {
		t.Fatalf("after the fallback every byte must come from the peer: %v", r.GetTotals())
	}
	finalChecks(t, r, n2, n3, src, shardState{})
	after := scrape(t, n3)
	requireMoved(t, before, after, 1, "recoverd_fallbacks_total", "cause", "unavailable")
	requireRequests(t, before, after, "recovery", r.RepositoryRequests)
	mc.Restart(1, 2, 3)

	// n2, now the primary, holds other files than the snapshot: all of
	// them are uploaded.
	stored := manifests(t, c)
	if len(stored) != 1 || !strings.Contains(stored[0], snapID) {
		t.Fatalf("manifests before the upload: %q, want the one of %s", stored, snapID)
	}
	resp, err := snapshotDuring(t, n2, func() { mc.Kill(1, 2, 3) })
	if err == nil {
		t.Fatalf("a snapshot succeeded with three MinIO servers of four down: %v", resp)
	}
	st := status.Convert(err)
	t.Logf("snapshot with three servers killed: %v: %s", st.Code(), st.Message())
	// MinIO without quorum holds the upload without answering ("no answer
	// within 2s (... lost its quorum)"), or refuses it (XMinioWriteQuorum):
	// either way the error says the repository is unavailable and names
	// the quorum.
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "repository unavailable") || !strings.Contains(strings.ToLower(st.Message()), "quorum") {
		t.Fatalf("snapshot error %v: want Unavailable, saying the repository is unavailable and naming the quorum", err)
	}
	mc.Restart(1, 2, 3)
	if now := manifests(t, c); len(now) != 1 || now[0] != stored[0] {
		t.Fatalf("manifests after the failed upload: %q, want only %q", now, stored[0])
	}
	// The repository is whole again: a snapshot succeeds. MinIO answers
	// SlowDown for a while after its servers came back (longer than the
	// node's short retry budget), each time as Unavailable: that is the
	// store healing, so the snapshot is asked again until it has healed.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := n2.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID})
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			t.Fatalf("snapshot after the restart: %v", err)
		}
		t.Logf("snapshot after the restart, the store still healing: %v", err)
		time.Sleep(time.Second)
	}
}
