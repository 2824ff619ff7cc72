package integration

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/snapshot"
)

// TestBadBlobMarkedSkippedVerifiedAndReplaced: a snapshot blob is
// corrupted in MinIO. The first recovery that uses the snapshot falls back
// to the peer and marks the blob bad in the repository (a metric, a log
// line, <shard>/bad/<blob>). The next recovery, on another node, picks the
// peer plan at once, naming the blob, without one request for a blob;
// `recoverctl snapshot verify` reports the blob and exits 1; the next
// snapshot uploads that file again under a new key and reuses the rest.
// One node and recoverctl name the repository by flags, the others by the
// URL's query.
func TestBadBlobMarkedSkippedVerifiedAndReplaced(t *testing.T) {
	c := newCluster(t)
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")
	// n4 and recoverctl name the repository by the flags, the others by
	// the URL's query: the same repository either way.
	flagForm := []string{"--s3-endpoint", c.minio.Endpoint, "--s3-insecure"}
	n4 := c.nodeRepo("n4", "s3://"+c.bucket()+"/snapshots", flagForm...)
	// n1 primary, n2 a replica with the same documents in other files; the
	// snapshot of n1 is logically equivalent to n2's commit, so a recovery
	// from n2 restores it.
	inSync(t, n1, n2, 4000, 4, false)
	snapID := mustv(n1.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID}))(t).Snapshot.Id
	man := readManifest(t, c, snapID)
	victim := man.Files[len(man.Files)/2]
	data := getObject(t, c, victim.Blob)
	for i := range data[:len(data)-4] {
		data[i] ^= 0x5a
	}
	putObject(t, c, victim.Blob, data)
	src := stateOf(t, n2, shardID)
	before := scrape(t, n3)

	// One recovery: snapshot plan, the blob fails its check, peer fallback.
	r := recoverOnto(t, n3, n2, nil)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	if len(r.Fallbacks) != 1 || r.Fallbacks[0].FromKind != pb.PlanKind_PLAN_KIND_SNAPSHOT || !strings.Contains(r.Fallbacks[0].Cause, victim.Name) {
		t.Fatalf("fallbacks %v: want one from the snapshot plan, naming %s", r.Fallbacks, victim.Name)
	}
	finalChecks(t, r, n2, n3, src, shardState{})
	requireMoved(t, before, scrape(t, n3), 1, "recoverd_snapshot_bad_blobs_total", "cause", "checksum")
	var mark snapshot.BadBlob
	if err := json.Unmarshal(getObject(t, c, "logs/0/bad/"+strings.TrimPrefix(victim.Blob, "logs/0/blobs/")), &mark); err != nil {
		t.Fatal(err)
	}
	if mark.Blob != victim.Blob || mark.File != victim.Name || mark.Snapshot != snapID || mark.Cause != snapshot.BadChecksum ||
		mark.FoundBy != "recovery "+r.Id+" on node n3" {
		t.Fatalf("mark %+v", mark)
	}
	if log := n3.LogTail(400); !strings.Contains(log, "a snapshot blob is bad: marked in the repository") || !strings.Contains(log, victim.Blob) {
		t.Fatalf("no log line about the bad blob on n3:\n%s", log)
	}

	// The next recovery, on another node: the peer plan at once, the blob
	// named, no blob read. Its planning reads the manifest and the mark (2
	// GETs), after the repository's layout marker (a GET: n4's first
	// request to the repository); a download would add a HEAD per file and
	// a ranged GET per part.
	r = recoverOnto(t, n4, n2, nil)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	reasons := strings.Join(r.GetPlan().GetReasons(), "\n")
	if len(r.Fallbacks) != 0 || !strings.Contains(reasons, "snapshot "+snapID+" rejected: the blob "+victim.Blob+" of its file "+victim.Name+" is marked bad (checksum, found by recovery") {
		t.Fatalf("fallbacks %v; reasons:\n%s", r.Fallbacks, reasons)
	}
	if rq := r.RepositoryRequests; rq.GetHead() != 0 || rq.GetGet() != 3 || rq.GetPut() != 0 {
		t.Fatalf("repository requests of the second recovery %v: want no HEAD and 3 GETs (layout marker, manifest, mark), no blob read", rq)
	}
	t.Logf("second recovery: %v; reasons:\n%s", r.RepositoryRequests, reasons)

	// verify reports the blob and exits 1.
	cmd := exec.Command(testutil.Binary(t, "recoverctl"), append([]string{"snapshot", "verify", "--repo", "s3://" + c.bucket() + "/snapshots",
		"--shard", "logs/0", "--throttle", "20MB", "-o", "json"}, flagForm...)...)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("verify: %v, want exit code 1\n%s", err, out)
	}
	var rep struct {
		OK      bool                 `json:"ok"`
		Blobs   int                  `json:"blobs"`
		Corrupt []snapshot.BlobCheck `json:"corrupt"`
		Missing []snapshot.BlobCheck `json:"missing"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("verify output: %v\n%s", err, out)
	}
	if rep.OK || rep.Blobs != len(man.Files) || len(rep.Missing) != 0 || len(rep.Corrupt) != 1 || rep.Corrupt[0].Blob != victim.Blob ||
		rep.Corrupt[0].Refs[0] != (snapshot.BlobRef{Snapshot: snapID, File: victim.Name}) {
		t.Fatalf("verify report:\n%s", out)
	}

	// The next snapshot uploads that file again, under a new key.
	snap := mustv(n1.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID}))(t)
	if snap.UploadedFiles != 1 || snap.ReusedFiles != int64(len(man.Files)-1) {
		t.Fatalf("next snapshot: %d files uploaded, %d reused; want 1 and %d", snap.UploadedFiles, snap.ReusedFiles, len(man.Files)-1)
	}
	again := readManifest(t, c, snap.Snapshot.Id)
	if f, ok := again.Lookup(victim.Name); !ok || f.Blob == victim.Blob || !f.SameAs(victim.FileMeta) {
		t.Fatalf("%s in the next snapshot: %+v, want a new blob (not %s)", victim.Name, f, victim.Blob)
	}
}

// nodeRepo is node with the repository named by repo and args instead of
// the cluster's URL.
func (c *cluster) nodeRepo(name, repo string, args ...string) *node {
	c.t.Helper()
	base := []string{"--retry-budget", "3s", "--idle-timeout", "3s", "--lease-ttl", "10s"}
	n := testutil.StartNode(c.t, testutil.NodeOptions{Name: name, Repo: repo, Env: c.env, Args: append(base, args...)})
	c.t.Cleanup(func() {
		if c.t.Failed() {
			c.t.Logf("%s log tail:\n%s", name, n.LogTail(40))
		}
	})
	return wrap(n)
}
