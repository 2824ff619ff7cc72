package recovery

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// blobReads counts what a download does to blobs (Stat, GET, ranged GET).
type blobReads struct {
	snapshot.Repository
	n atomic.Int64
}

func (b *blobReads) count(key string) {
	if strings.Contains(key, "/blobs/") {
		b.n.Add(1)
	}
}

func (b *blobReads) Stat(ctx context.Context, key string) (snapshot.ObjectInfo, error) {
	b.count(key)
	return b.Repository.Stat(ctx, key)
}

func (b *blobReads) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	b.count(key)
	return b.Repository.Get(ctx, key)
}

func (b *blobReads) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	b.count(key)
	return b.Repository.GetRange(ctx, key, off, n)
}

// drop removes a shard from the side's data directory, so the next
// recovery builds it anew.
func (d *dirShards) drop(t *testing.T, id engine.ShardID) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := errors.Join(d.eng.Close(), os.RemoveAll(shardstore.Dir(d.dir, id))); err != nil {
		t.Fatal(err)
	}
	d.eng = d.open()
}

// TestCorruptBlobIsMarkedAndLaterPlansSkipItsSnapshot: a recovery whose
// snapshot download finds a corrupt blob falls back, counts the blob,
// and marks it in the repository. The next recovery does not choose that
// snapshot (its reasons name the blob) and reads no blob; once a newer
// snapshot replaces it, snapshots are used again.
func TestCorruptBlobIsMarkedAndLaterPlansSkipItsSnapshot(t *testing.T) {
	local, err := snapshot.NewLocalRepository(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo := &blobReads{Repository: local}
	metrics := NewMetrics(prometheus.NewRegistry())
	e := newEnv(t, shardstore.Options{RetainOps: 100000}, Config{Repo: repo, Metrics: metrics})
	e.repo = local
	snap := failoverSource(t, e)
	victim := snap.Manifest.Files[len(snap.Manifest.Files)-1]
	corruptBlob(t, e, victim)

	s := e.run(StartRequest{})
	requireDone(t, s)
	if len(s.Fallbacks) != 1 || s.Fallbacks[0].From != planner.KindSnapshot {
		t.Fatalf("fallbacks %+v: want one, from the snapshot plan", s.Fallbacks)
	}
	var c dto.Metric
	if err := metrics.badBlobs.WithLabelValues(snapshot.BadChecksum).Write(&c); err != nil || c.GetCounter().GetValue() != 1 {
		t.Fatalf("recoverd_snapshot_bad_blobs_total{cause=checksum} = %v (%v), want 1", c.GetCounter().GetValue(), err)
	}
	ctx := context.Background()
	bad, err := snapshot.BadBlobs(ctx, local, shardID)
	if err != nil || len(bad) != 1 || !bad[victim.Blob] {
		t.Fatalf("marks %v, %v: want %s", bad, err, victim.Blob)
	}
	mark, err := snapshot.ReadBadBlob(ctx, local, shardID, victim.Blob)
	if err != nil || mark.Cause != snapshot.BadChecksum || mark.File != victim.Name || mark.Snapshot != snap.Manifest.ID ||
		mark.FoundBy != "recovery "+s.ID+" on node target" || !strings.Contains(mark.Detail, "checksum") {
		t.Fatalf("mark %+v, %v", mark, err)
	}

	e.tgt.drop(t, shardID)
	before := repo.n.Load()
	s = e.run(StartRequest{})
	requireDone(t, s)
	reasons := strings.Join(s.Plan.Reasons, "\n")
	if s.Plan.Kind != planner.KindPeer || len(s.Fallbacks) != 0 || !strings.Contains(reasons, victim.Blob+" of its file "+victim.Name+" is marked bad (checksum, found by recovery") {
		t.Fatalf("second recovery: %s plan, fallbacks %+v; reasons:\n%s", s.Plan.Kind, s.Fallbacks, reasons)
	}
	if n := repo.n.Load() - before; n != 0 {
		t.Fatalf("the second recovery read blobs %d times: it tried the snapshot with the bad blob", n)
	}

	// A newer snapshot, which reuses no bad blob, replaces it.
	if _, err := snapshot.Create(ctx, local, snapshot.StoreSource(e.source()), snapshot.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.tgt.drop(t, shardID)
	s = e.run(StartRequest{})
	requireDone(t, s)
	if s.Plan.Kind == planner.KindPeer || s.Totals.FromSnapshot.Files == 0 || len(s.Fallbacks) != 0 {
		t.Fatalf("after a new snapshot: %s plan, %+v, fallbacks %+v", s.Plan.Kind, s.Totals, s.Fallbacks)
	}
	if digest(t, e.target()) != digest(t, e.source()) {
		t.Fatal("copy differs")
	}
}

// TestSnapshotInputCarriesBadBlobs: the planner's input names the files
// of the latest snapshot whose blobs are marked, the first with what its
// mark says; a mark of a blob the latest snapshot does not reference is
// not the snapshot's concern.
func TestSnapshotInputCarriesBadBlobs(t *testing.T) {
	ctx := context.Background()
	repo, err := snapshot.NewLocalRepository(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := shardstore.Open(t.TempDir(), shardID, shardstore.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		write(t, s, 20, i*20, 100)
		flush(t, s)
	}
	res, err := snapshot.Create(ctx, repo, snapshot.StoreSource(s), snapshot.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := res.Manifest.Files
	other := snapshot.BlobPrefix(shardID) + "seg_other-000000000000"
	for _, b := range []snapshot.BadBlob{
		{Blob: f[2].Blob, File: f[2].Name, Cause: snapshot.BadMissing, FoundBy: "snapshot verify"},
		{Blob: f[0].Blob, File: f[0].Name, Cause: snapshot.BadChecksum, FoundBy: "recovery r-1 on node n3"},
		{Blob: other, File: "seg_other", Cause: snapshot.BadChecksum},
	} {
		if err := snapshot.MarkBad(ctx, repo, shardID, b); err != nil {
			t.Fatal(err)
		}
	}
	snap, m := SnapshotInput(ctx, repo, shardID)
	if snap.State != planner.SnapshotAvailable || m == nil || len(snap.BadBlobs) != 2 {
		t.Fatalf("SnapshotInput = %+v", snap)
	}
	first, second := snap.BadBlobs[0], snap.BadBlobs[1]
	if first.File != f[0].Name || first.Blob != f[0].Blob || !strings.HasPrefix(first.Why, "checksum, found by recovery r-1 on node n3 at ") ||
		second.File != f[2].Name || second.Why != "" {
		t.Fatalf("bad blobs %+v", snap.BadBlobs)
	}
	// Marks that cannot be listed: the snapshot is not vouched for.
	snap, m = SnapshotInput(ctx, failingList{repo, snapshot.BadPrefix(shardID)}, shardID)
	if snap.State != planner.SnapshotUnavailable || m != nil || !strings.Contains(snap.Err, "bad-blob marks") {
		t.Fatalf("with the marks unlisted: %+v", snap)
	}
}

// failingList fails the listing of one prefix as an unreachable store.
type failingList struct {
	snapshot.Repository
	prefix string
}

func (f failingList) List(ctx context.Context, prefix string) ([]string, error) {
	if prefix == f.prefix {
		return nil, snapshot.ErrAccessDenied
	}
	return f.Repository.List(ctx, prefix)
}
