package integration

import (
	"encoding/binary"
	"hash/crc32"
	"os/exec"
	"strings"
	"testing"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
)

// TestSnapshotCreateWhileOtherProcessesDelete: an incremental snapshot
// never references a blob that another process removes while it is
// created. A throttled snapshot of n1 (a recoverd) reuses the blob of an
// earlier snapshot and uploads new ones, a small one first; once that one
// is stored, recoverctl processes sweep the same MinIO repository's
// unfinished uploads with no grace and delete the earlier snapshot, both
// with a deletion delay of 1ms (the worst case: marked blobs go at once).
// Every blob the new snapshot's manifest names must exist and hold its
// file, and a recovery from it must take no fallback.
func TestSnapshotCreateWhileOtherProcessesDelete(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1", "--throttle", "1MB")
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	index(t, n1, 1000, 1024, 1)
	flush(t, n1)
	s1 := mustv(n1.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID}))(t).Snapshot.Id
	index(t, n1, 50, 1024, 2) // a small segment, stored first
	flush(t, n1)
	index(t, n1, 4000, 1024, 3) // a large one: about 4s at 1 MB/s
	flush(t, n1)

	type result struct {
		resp *pb.CreateSnapshotResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := n1.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID})
		done <- result{resp, err}
	}()
	recoverctl := func(args ...string) {
		t.Helper()
		cmd := exec.Command(testutil.Binary(t, "recoverctl"), append(append([]string{"snapshot"}, args...),
			"--repo", c.repo, "--index", shardID.Index, "--shard", "0", "--deletion-delay", "1ms")...)
		cmd.Env = append(cmd.Environ(), c.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("recoverctl snapshot %s: %v\n%s", args[0], err, out)
		}
		t.Logf("recoverctl snapshot %s:\n%s", args[0], out)
	}
	// Once the new snapshot's first upload is stored (the large one is
	// not listed before its upload completes).
	blobs := func() (n int) {
		for _, k := range listObjects(t, c) {
			if strings.Contains(k, "/blobs/") {
				n++
			}
		}
		return n
	}
	eventually(t, 30e9, "the new snapshot's first upload", func() bool { return blobs() > len(readManifest(t, c, s1).Files) })
	recoverctl("unfinished", "--grace", "0s", "--remove")
	recoverctl("delete", s1)
	r := <-done
	if r.err != nil {
		t.Fatalf("create while other processes delete: %v", r.err)
	}
	s2 := r.resp.Snapshot.Id
	t.Logf("snapshot %s: %d files uploaded, %d reused", s2, r.resp.UploadedFiles, r.resp.ReusedFiles)

	m := readManifest(t, c, s2)
	keys := map[string]bool{}
	for _, k := range listObjects(t, c) {
		keys[k] = true
	}
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for _, f := range m.Files {
		if !keys[objectKey(f.Blob)] {
			t.Errorf("snapshot %s names blob %s of %s, which another process deleted", s2, f.Blob, f.Name)
			continue
		}
		b := getObject(t, c, f.Blob)
		if int64(len(b)) != f.Length || crc32.Checksum(b[:len(b)-4], castagnoli) != f.CRC32C || binary.LittleEndian.Uint32(b[len(b)-4:]) != f.CRC32C {
			t.Errorf("blob %s of %s: %d bytes, does not hold the file (%d bytes, CRC32C %08x)", f.Blob, f.Name, len(b), f.Length, f.CRC32C)
		}
	}
	if t.Failed() {
		t.Fatalf("objects: %s", strings.Join(listObjects(t, c), "\n  "))
	}

	// The snapshot is whole: a new copy recovered from it takes no fallback.
	n3 := c.node("n3")
	rec := recoverOnto(t, n3, n1, nil)
	requireDone(t, rec)
	if len(rec.Fallbacks) > 0 || rec.GetTotals().GetFromSnapshot().GetRecoveredBytes() == 0 {
		t.Fatalf("recovery from %s: %d fallbacks (%v), %d bytes from the snapshot; plan %v", s2, len(rec.Fallbacks), rec.Fallbacks,
			rec.GetTotals().GetFromSnapshot().GetRecoveredBytes(), rec.GetPlan().GetReasons())
	}
}
