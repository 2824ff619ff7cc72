package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// Fault tests: real recoverd processes, a real MinIO, and a TCP proxy
// where the network misbehaves. Each ends with the same checks: the target
// is its old self or a complete copy of the source (digest, history UUID,
// checkpoints), no staging or temp file is left, the source lost nothing,
// the recovery's report (stage, plan, fallbacks, bytes) says what happened
// and the metrics moved with it.

// seed creates shardID on n with segments flushed segments of docs
// documents of size bytes each, then extra ops above the commit; it
// returns every op.
func seed(t *testing.T, n *node, segments, docs, size, extra int) []*pb.Op {
	t.Helper()
	mustv(n.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	var ops []*pb.Op
	for i := 0; i < segments; i++ {
		ops = append(ops, index(t, n, docs, size, uint64(100+i))...)
		flush(t, n)
	}
	if extra > 0 {
		ops = append(ops, index(t, n, extra, size, 99)...)
	}
	return ops
}

// finalChecks are the checks every fault scenario ends with. When the
// recovery is done the target must equal the source; otherwise it must be
// its previous self. The source must hold what it held (sourceBefore) and
// no node may keep staging or temp files.
func finalChecks(t *testing.T, r *pb.Recovery, source, target *node, sourceBefore, targetBefore shardState, others ...*node) {
	t.Helper()
	if r.Stage == pb.Stage_STAGE_DONE {
		requireSameCopy(t, source, target)
		requireBytesAddUp(t, r)
	} else {
		requireUnchanged(t, target, shardID, targetBefore)
	}
	if now := stateOf(t, source, shardID); now != sourceBefore {
		t.Fatalf("the source changed: before %v, now %v", sourceBefore, now)
	}
	for _, n := range append([]*node{source, target}, others...) {
		requireNoLeftovers(t, n)
	}
}

// TestHybridFallbackWhenMinIOKilled: MinIO dies while a hybrid plan
// downloads. The repository, not a file, failed: the downloads stop and
// every snapshot file not downloaded yet is fetched from the source, in one
// fallback, and the recovery completes.
func TestHybridFallbackWhenMinIOKilled(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1", "--retain-ops", "0")
	n2 := c.node("n2", "--throttle", "2MB", "--max-snapshot-downloads", "1")
	seed(t, n1, 3, 1000, 2048, 0)
	mustv(n1.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID}))(t)
	index(t, n1, 500, 2048, 5)
	flush(t, n1)
	src := stateOf(t, n1, shardID)
	before := scrape(t, n2)

	id := startRecovery(t, n2, n1.PeerAddr, nil)
	waitFor(t, n2, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromSnapshot().GetRecoveredBytes() > 0 })
	c.minio.Kill()
	r := waitRecovery(t, n2, id)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_HYBRID)
	if len(r.Fallbacks) != 1 {
		t.Fatalf("fallbacks %v: want one, for the repository", r.Fallbacks)
	}
	f := r.Fallbacks[0]
	if f.FromKind != pb.PlanKind_PLAN_KIND_HYBRID || f.ToKind != pb.PlanKind_PLAN_KIND_PEER || !strings.Contains(f.Cause, "repository failed") || !strings.Contains(f.Cause, "snapshot file seg_") {
		t.Fatalf("fallback %v: want hybrid -> peer naming the repository and the download that failed", f)
	}
	tot := r.GetTotals()
	if tot.GetFromPeer().GetFiles()+tot.GetFromSnapshot().GetFiles() != 4 || tot.GetFromPeer().GetFiles() < 2 {
		t.Fatalf("files by source: %v", tot)
	}
	finalChecks(t, r, n1, n2, src, shardState{})
	after := scrape(t, n2)
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "hybrid", "result", "done")
	requireMoved(t, before, after, 1, "recoverd_fallbacks_total", "cause", "unavailable")
	requireMoved(t, before, after, 1, "recoverd_snapshot_download_errors_total")
	requireMoved(t, before, after, float64(tot.GetFromPeer().GetBytes()), "recoverd_recovered_bytes_total", "source", "peer")
	requireMoved(t, before, after, float64(tot.GetFromSnapshot().GetBytes()), "recoverd_recovered_bytes_total", "source", "snapshot")
}

// TestSnapshotFallbackWhenMinIOHangs: MinIO is frozen (SIGSTOP) mid-download:
// the reads hit their deadline, the snapshot plan is abandoned and the peer
// plan completes; MinIO then resumes with nothing lost.
func TestSnapshotFallbackWhenMinIOHangs(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node("n1"), c.node("n2")
	n3 := c.node("n3", "--throttle", "2MB", "--max-snapshot-downloads", "2", "--s3-timeout", "2s")
	snapID := failover(t, n1, n2, 4000)
	src := stateOf(t, n2, shardID)
	before := scrape(t, n3)
	id := startRecovery(t, n3, n2.PeerAddr, nil)
	waitFor(t, n3, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromSnapshot().GetRecoveredBytes() > 0 })
	c.minio.Pause()
	paused := time.Now()
	r := waitRecovery(t, n3, id)
	c.minio.Resume()
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	if len(r.Fallbacks) != 1 || r.Fallbacks[0].FromKind != pb.PlanKind_PLAN_KIND_SNAPSHOT || r.Fallbacks[0].ToKind != pb.PlanKind_PLAN_KIND_PEER {
		t.Fatalf("fallbacks: %v", r.Fallbacks)
	}
	fb := r.Fallbacks[0]
	if wait := fb.Time.AsTime().Sub(paused); wait > 20*time.Second {
		t.Fatalf("the fallback came %v after MinIO froze; the 2s deadline should have ended the downloads", wait)
	}
	t.Logf("fallback %v after MinIO froze: %s", fb.Time.AsTime().Sub(paused).Round(time.Millisecond), fb.Cause)
	if r.GetTotals().GetFromPeer().GetRecoveredBytes() != r.GetTotals().GetTotal().GetBytes() {
		t.Fatalf("after the fallback every byte must come from the peer: %v", r.GetTotals())
	}
	finalChecks(t, r, n2, n3, src, shardState{})
	after := scrape(t, n3)
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
	requireMoved(t, before, after, 1, "recoverd_fallbacks_total", "cause", "unavailable")
	requireMoved(t, before, after, -1, "recoverd_snapshot_download_errors_total")
	requireMoved(t, before, after, float64(r.GetTotals().GetTotal().GetBytes()), "recoverd_recovered_bytes_total", "source", "peer")
	// The repository lost nothing: the snapshot is still listed.
	list := mustv(n2.snap.ListSnapshots(ctxT(t), &pb.ListSnapshotsRequest{Shard: shardID}))(t)
	if len(list.Snapshots) != 1 || list.Snapshots[0].Id != snapID {
		t.Fatalf("snapshots after the fault: %v", list.Snapshots)
	}
}

// TestSnapshotBlobCorrupted: a blob is overwritten in place with the same
// length and flipped bytes. The download fails its CRC32C check, the
// recovery falls back to the peer and the fallback names the file.
func TestSnapshotBlobCorrupted(t *testing.T) {
	c := newCluster(t)
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")
	snapID := failover(t, n1, n2, 4000)
	man := readManifest(t, c, snapID)
	victim := man.Files[len(man.Files)/2]
	data := getObject(t, c, victim.Blob)
	for i := range data[:len(data)-4] { // the footer too would be caught; flip the body
		data[i] ^= 0x5a
	}
	putObject(t, c, victim.Blob, data)
	src := stateOf(t, n2, shardID)
	before := scrape(t, n3)

	r := recoverOnto(t, n3, n2, nil)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	if len(r.Fallbacks) != 1 || r.Fallbacks[0].FromKind != pb.PlanKind_PLAN_KIND_SNAPSHOT {
		t.Fatalf("fallbacks: %v", r.Fallbacks)
	}
	cause := r.Fallbacks[0].Cause
	if !strings.Contains(cause, victim.Name) || !strings.Contains(strings.ToLower(cause), "checksum") {
		t.Fatalf("the fallback cause must name the corrupt file %s and the checksum: %q", victim.Name, cause)
	}
	t.Logf("fallback cause: %s", cause)
	finalChecks(t, r, n2, n3, src, shardState{})
	after := scrape(t, n3)
	requireMoved(t, before, after, 1, "recoverd_fallbacks_total", "cause", "checksum")
	requireMoved(t, before, after, 1, "recoverd_snapshot_download_errors_total")
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
	// The corrupt snapshot is reported, not deleted.
	list := mustv(n2.snap.ListSnapshots(ctxT(t), &pb.ListSnapshotsRequest{Shard: shardID}))(t)
	if len(list.Snapshots) != 1 {
		t.Fatalf("snapshots: %v", list.Snapshots)
	}
}

// TestRepositoryUnreachableWhenPlanning: MinIO is down when the recovery
// plans. The plan is the peer plan with the reason recorded, and once
// MinIO is back every snapshot is still there.
func TestRepositoryUnreachableWhenPlanning(t *testing.T) {
	c := newCluster(t)
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")
	snapID := failover(t, n1, n2, 2000)
	objects := listObjects(t, c)
	src := stateOf(t, n2, shardID)
	before := scrape(t, n3)
	c.minio.Kill()
	start := time.Now()
	r := recoverOnto(t, n3, n2, nil)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	reasons := strings.Join(r.GetPlan().GetReasons(), "\n")
	if !strings.Contains(reasons, "unavailable") {
		t.Fatalf("the plan's reasons do not say the repository is unavailable:\n%s", reasons)
	}
	if len(r.Fallbacks) != 0 {
		t.Fatalf("a peer plan from the start has no fallback: %v", r.Fallbacks)
	}
	t.Logf("recovered in %v with the repository down", time.Since(start).Round(time.Millisecond))
	finalChecks(t, r, n2, n3, src, shardState{})
	after := scrape(t, n3)
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
	requireMoved(t, before, after, 0, "recoverd_snapshot_download_errors_total")
	c.minio.Restart()
	if now := listObjects(t, c); !slices.Equal(now, objects) {
		t.Fatalf("repository objects changed while it was down:\nbefore %v\nafter  %v", objects, now)
	}
	list := mustv(n2.snap.ListSnapshots(ctxT(t), &pb.ListSnapshotsRequest{Shard: shardID}))(t)
	if len(list.Snapshots) != 1 || list.Snapshots[0].Id != snapID {
		t.Fatalf("snapshots: %v", list.Snapshots)
	}
}

// TestSourceRestartedMidTransfer: the source is killed while files stream
// and comes back within the retry budget. Its pins died with it, so the
// recovery re-plans, keeps what it verified and completes: the restarted
// source sends only the bytes the target did not have.
func TestSourceRestartedMidTransfer(t *testing.T) {
	c := newCluster(t)
	// The source's budget paces the transfer: the target cannot hold more
	// than the source has sent.
	n1 := c.node("n1", "--throttle", "2MB")
	n2 := c.node("n2", "--retry-budget", "15s")
	seed(t, n1, 4, 2000, 1024, 200)
	src := stateOf(t, n1, shardID)
	before := scrape(t, n2)
	id := startRecovery(t, n2, n1.PeerAddr, nil)
	waitFor(t, n2, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromPeer().GetRecoveredBytes() > 3<<20 })
	verified := getRecovery(t, n2, id).GetTotals().GetFromPeer().GetRecoveredBytes()
	n1.Kill()
	time.Sleep(time.Second)
	n1.Restart()
	r := waitRecovery(t, n2, id)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	total := r.GetTotals().GetFromPeer().GetBytes()
	sent := scrape(t, n1)["recoverd_peer_sent_bytes_total"]
	t.Logf("%d of %d bytes verified before the kill; the restarted source sent %v; resumes %d, replans %d", verified, total, sent, r.Resumes, r.Replans)
	if sent > float64(total-verified) {
		t.Fatalf("the restarted source sent %v bytes, but the target had verified %d of %d before the kill: verified bytes were sent again", sent, verified, total)
	}
	if r.Resumes == 0 && r.Replans == 0 {
		t.Fatal("neither a resume nor a re-plan was recorded")
	}
	finalChecks(t, r, n1, n2, src, shardState{})
	after := scrape(t, n2)
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
	if d := delta(before, after, "recoverd_retries_total", "cause", "peer_stream") + after.sum("recoverd_replans_total") - before.sum("recoverd_replans_total"); d < 1 {
		t.Fatal("neither recoverd_retries_total{cause=peer_stream} nor recoverd_replans_total moved")
	}
}

// TestSourceKilledForGood: the source dies mid-transfer and stays down.
// The recovery gives up once its retry budget is spent, says why, and the
// target is exactly what it was.
func TestSourceKilledForGood(t *testing.T) { bothModes(t, testSourceKilledForGood) }

func testSourceKilledForGood(t *testing.T, c *cluster) {
	// No replication: the copy's lease (the first recovery's, handed
	// over) expires at once, so that the source keeps no op below its
	// commit and the second recovery copies files.
	n1 := c.node("n1", "--retain-ops", "0", "--throttle", "2MB", "--copy-retention", "1ms")
	n2 := c.node("n2")
	seed(t, n1, 2, 1000, 1024, 0)
	requireDone(t, recoverOnto(t, n2, n1, nil))
	// The source moves on: new documents and a merge, so the target's
	// files are all stale and a peer plan is needed.
	index(t, n1, 4000, 1024, 7)
	mustv(n1.shard.Merge(ctxT(t), &pb.MergeRequest{Shard: shardID}))(t)
	tgt := stateOf(t, n2, shardID)
	before := scrape(t, n2)
	id := startRecovery(t, n2, n1.PeerAddr, nil)
	waitFor(t, n2, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromPeer().GetRecoveredBytes() > 1<<20 })
	killed := time.Now()
	n1.Kill()
	r := waitRecovery(t, n2, id)
	t.Logf("failed %v after the source died: %s", time.Since(killed).Round(time.Millisecond), r.Error)
	requireFailed(t, r, "source", "retries exhausted")
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	requireUnchanged(t, n2, shardID, tgt)
	requireNoLeftovers(t, n2)
	after := scrape(t, n2)
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "failed")
	requireMoved(t, before, after, -1, "recoverd_retries_total", "cause", "peer_stream")
	// The source lost nothing either: it opens at what it had.
	n1.Restart()
	if st := stateOf(t, n1, shardID); st.MaxSeqNo != 5999 || st.Checkpoint != 5999 {
		t.Fatalf("the source after a restart: %v", st)
	}
	requireNoLeftovers(t, n1)
}

// TestWritesDuringRecovery: the source keeps indexing (and flushing) for
// the whole recovery. The copy is the source's commit at finalize plus
// every op replayed after it; once the ops written after the recovery's
// last catch-up are replicated to it, as the primary would, it equals the
// source.
func TestWritesDuringRecovery(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1", "--throttle", "3MB")
	n2 := c.node("n2")
	ops := seed(t, n1, 3, 1000, 1024, 0)
	before := scrape(t, n2)

	stop := make(chan struct{})
	written := make(chan []*pb.Op)
	go func() {
		var mine []*pb.Op
		defer func() { written <- mine }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			batch := make([]*pb.Doc, 50)
			for j := range batch {
				batch[j] = &pb.Doc{Key: fmt.Sprintf("live-%d-%d", i, j%40), Value: []byte(strings.Repeat("v", 200+i%100))}
			}
			resp, err := n1.shard.Index(context.Background(), &pb.IndexRequest{Shard: shardID, Docs: batch})
			if err != nil {
				t.Errorf("index during the recovery: %v", err)
				return
			}
			mine = append(mine, resp.Ops...)
			if i%25 == 24 {
				if _, err := n1.shard.Flush(context.Background(), &pb.FlushRequest{Shard: shardID}); err != nil {
					t.Errorf("flush during the recovery: %v", err)
					return
				}
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // writes before the plan too
	r := recoverOnto(t, n2, n1, nil)
	close(stop)
	live := <-written
	ops = append(ops, live...)
	if r.Stage != pb.Stage_STAGE_DONE {
		t.Fatalf("recovery ended %v: %s", r.Stage, r.Error)
	}
	res := r.GetResult()
	if !res.GetMatch() || !strings.Contains(res.GetDetail(), "equals the source at seqno") {
		t.Fatalf("result check: %v (the digests are compared at the seqno the copy reached, whatever the source indexed since)", res)
	}
	requireBytesAddUp(t, r)
	tgt := stateOf(t, n2, shardID)
	planned := r.GetPlan().GetOps().GetTo()
	t.Logf("%d ops written during the recovery; plan's file set + staged ops up to %d, target at %d, %d ops replayed; check: %s",
		len(live), planned, tgt.Checkpoint, r.GetOps().GetReplayed(), res.GetDetail())
	if tgt.Checkpoint < planned || tgt.Checkpoint != tgt.MaxSeqNo || tgt.Checkpoint != res.GetTargetLocalCheckpoint() {
		t.Fatalf("target %v after a recovery whose plan went to %d and whose check saw %d", tgt, planned, res.GetTargetLocalCheckpoint())
	}
	if tgt.Checkpoint <= planned && len(live) > 0 && r.GetOps().GetReplayed() == 0 {
		t.Fatal("writes went on during the recovery but no op was replayed after the plan")
	}
	// The source lost nothing: every op it acknowledged is there.
	src := stateOf(t, n1, shardID)
	if src.MaxSeqNo != int64(len(ops))-1 || src.Checkpoint != src.MaxSeqNo {
		t.Fatalf("the source acknowledged %d ops but is at %v", len(ops), src)
	}
	// Replicate what the target has not seen, as the primary would.
	var missing []*pb.Op
	for _, op := range ops {
		if op.Seqno > tgt.Checkpoint {
			missing = append(missing, op)
		}
	}
	if len(missing) > 0 {
		mustv(n2.shard.Apply(ctxT(t), &pb.ApplyRequest{Shard: shardID, Ops: missing}))(t)
	}
	requireSameCopy(t, n1, n2)
	for _, n := range []*node{n1, n2} {
		requireNoLeftovers(t, n)
	}
	after := scrape(t, n2)
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
	if d := delta(before, after, "recoverd_ops_replayed_total"); d != float64(r.GetOps().GetReplayed()) {
		t.Fatalf("recoverd_ops_replayed_total moved by %v, the recovery replayed %d", d, r.GetOps().GetReplayed())
	}
}
