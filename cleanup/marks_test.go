package cleanup

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// The sweep deletes nothing at once: an unfinished upload past the grace
// is marked, and deleted by a sweep once the mark is older than the
// deletion delay; the blobs a snapshot gc marked go the same way, counted
// as snapshot blobs.
func TestSweepMarksThenDeletesAfterTheDelay(t *testing.T) {
	clk := newClock()
	id := shardstore.ShardID{Index: "logs", Shard: 0}
	sh := openShard(t, t.TempDir(), id, 500, clk)
	repo, err := snapshot.NewLocalRepository(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var snaps []*snapshot.CreateResult
	for range 2 {
		res, err := snapshot.Create(ctx, repo, snapshot.StoreSource(sh), snapshot.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, res)
		if err := sh.Merge(); err != nil { // the next snapshot shares no file
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	orphan := snapshot.BlobPrefix(id) + "orphan-1"
	putBlob(t, repo, orphan)
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(repo.Root(), filepath.FromSlash(orphan)), past, past); err != nil {
		t.Fatal(err)
	}
	gc, err := snapshot.GC(ctx, repo, id, 1, snapshot.DeleteOptions{Delay: 10 * time.Minute})
	if err != nil || gc.MarkedBlobs == 0 || gc.DeletedBlobs != 0 {
		t.Fatalf("gc = %+v, %v", gc, err)
	}
	sw, _, _ := newSweeper(t, Config{Engine: shardsOf(sh), Repo: repo,
		UploadGrace: time.Hour, DeletionDelay: 10 * time.Minute, Now: clk.Now})

	rep, err := sw.RunOnce(ctx)
	if err != nil || len(rep.Marked) != 1 || rep.Marked[0].Name != orphan || rep.Count(KindUpload)+rep.Count(KindSnapshotBlob) != 0 {
		t.Fatalf("first sweep: %+v, %v; want the orphan marked, nothing deleted", rep, err)
	}
	if _, err := repo.Stat(ctx, orphan); err != nil {
		t.Fatalf("the orphan went before the delay: %v", err)
	}
	clk.Advance(11 * time.Minute)
	rep, err = sw.RunOnce(ctx)
	if err != nil || rep.Count(KindUpload) != 1 || rep.Count(KindSnapshotBlob) != gc.MarkedBlobs || len(rep.Marked) != 0 {
		t.Fatalf("sweep past the delay: %+v, %v; want the orphan and the %d blobs gc marked deleted", rep, err, gc.MarkedBlobs)
	}
	if got := removals(t, sw, KindSnapshotBlob); got != gc.MarkedBlobs {
		t.Errorf("snapshot blob removals counted %d, want %d", got, gc.MarkedBlobs)
	}
	for _, f := range snaps[1].Manifest.Files {
		if _, err := repo.Stat(ctx, f.Blob); err != nil {
			t.Fatalf("a blob of the kept snapshot went: %v", err)
		}
	}
	if keys, err := repo.List(ctx, snapshot.MarkPrefix(id)); err != nil || len(keys) != 0 {
		t.Fatalf("marks left: %v %v", keys, err)
	}
}
