package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recoverd/recoverd/shardstore"
)

func TestLocalSnapshots(t *testing.T) {
	testSnapshots(t, func(t *testing.T) Repository { return newLocalRepo(t) })
}

// restore downloads m into a fresh shard and publishes it; it returns the
// restored shard.
func restore(t *testing.T, repo Repository, m *Manifest, d *Downloader) *shardstore.Shard {
	t.Helper()
	tgt := newShard(t, t.TempDir(), m.Shard, 0, 0, 0)
	st, err := startStage(tgt, "restore-1")
	if err != nil {
		t.Fatal(err)
	}
	if d == nil {
		d = &Downloader{}
	}
	if err := d.Download(ctxTimeout(t, time.Minute), repo, m.Files, st.Area); err != nil {
		t.Fatalf("download: %v", err)
	}
	if err := st.Publish(m.FileMetas(), m.Commit); err != nil {
		t.Fatalf("publish: %v", err)
	}
	return tgt
}

func digest(t *testing.T, s *shardstore.Shard) string {
	t.Helper()
	d, err := s.Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func keysUnder(t *testing.T, repo Repository, prefix string) []string {
	t.Helper()
	keys, err := repo.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// testSnapshots runs the snapshot life cycle against a repository.
func testSnapshots(t *testing.T, newRepo func(t *testing.T) Repository) {
	t.Run("ConcurrentDeletion", func(t *testing.T) { testConcurrentDeletion(t, newRepo) })
	t.Run("CreateListLatestRead", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 3, 50, 1000)
		s.SetGlobalCheckpoint(100)
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		meta := s.Metadata()
		before := time.Now().UTC().Add(-time.Second)
		res, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m := res.Manifest
		if res.UploadedFiles != len(meta.Files) || res.UploadedBytes != meta.TotalBytes() || res.ReusedFiles != 0 || res.ReusedBytes != 0 {
			t.Fatalf("result %+v for %d files of %d bytes", res, len(meta.Files), meta.TotalBytes())
		}
		if m.Commit != meta.Commit || m.Generation != meta.Generation || m.Shard != testShard {
			t.Fatalf("manifest commit %+v gen %d, shard commit %+v gen %d", m.Commit, m.Generation, meta.Commit, meta.Generation)
		}
		if m.Commit.HistoryUUID == "" || m.Commit.MaxSeqNo != 149 || m.Commit.LocalCheckpoint != 149 || m.Commit.GlobalCheckpoint != 100 ||
			m.Commit.WriterVersion != shardstore.WriterVersion || m.Commit.FormatVersion != shardstore.FormatVersion {
			t.Fatalf("manifest commit data %+v", m.Commit)
		}
		if !slices.Equal(m.FileMetas(), meta.Files) {
			t.Fatalf("manifest files %+v, commit files %+v", m.FileMetas(), meta.Files)
		}
		for _, f := range m.Files {
			if f.WriterUUID == "" || !strings.HasPrefix(f.Blob, BlobPrefix(testShard)+f.Name+"-") {
				t.Fatalf("file entry %+v", f)
			}
		}
		if m.StartTime.Before(before) || m.EndTime.Before(m.StartTime) || m.EndTime.After(time.Now().Add(time.Second)) {
			t.Fatalf("times %v .. %v", m.StartTime, m.EndTime)
		}
		if !strings.HasPrefix(m.ID, "s-"+m.StartTime.Format("20060102T1504")) {
			t.Fatalf("id %s does not carry the start time %v", m.ID, m.StartTime)
		}
		// Data first, manifest last: the manifest is the only key under snapshots/.
		if got := keysUnder(t, repo, ManifestPrefix(testShard)); !slices.Equal(got, []string{ManifestKey(testShard, m.ID)}) {
			t.Fatalf("manifest keys %q", got)
		}
		if got := keysUnder(t, repo, BlobPrefix(testShard)); len(got) != len(meta.Files) {
			t.Fatalf("blob keys %q", got)
		}

		entries, err := List(ctx, repo, testShard)
		if err != nil || len(entries) != 1 || entries[0].ID != m.ID || entries[0].Err != nil {
			t.Fatalf("list = %+v, %v", entries, err)
		}
		latest, err := Latest(ctx, repo, testShard)
		if err != nil {
			t.Fatal(err)
		}
		read, err := Read(ctx, repo, testShard, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, got := range []*Manifest{entries[0].Manifest, latest, read} {
			a, _ := EncodeManifest(got)
			b, _ := EncodeManifest(m)
			if string(a) != string(b) {
				t.Fatalf("read back\n%s\nwritten\n%s", a, b)
			}
		}
		shards, err := Shards(ctx, repo)
		if err != nil || !slices.Equal(shards, []shardstore.ShardID{testShard}) {
			t.Fatalf("shards = %v, %v", shards, err)
		}
		if d := digest(t, restore(t, repo, m, nil)); d != digest(t, s) {
			t.Fatal("restored shard differs from the source")
		}
	})

	t.Run("Incremental", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 5, 40, 1000)
		first, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		old := s.Metadata()
		addSegment(t, s, 3, 1000)
		meta := s.Metadata()
		var uploadedBytes int64
		var mu sync.Mutex
		second, err := Create(ctx, repo, StoreSource(s), CreateOptions{OnBytes: func(_ string, n int64) { mu.Lock(); uploadedBytes += n; mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		newBytes := meta.TotalBytes() - old.TotalBytes()
		if second.UploadedFiles != 1 || second.UploadedBytes != newBytes || second.ReusedFiles != len(old.Files) || second.ReusedBytes != old.TotalBytes() {
			t.Fatalf("incremental result %+v; %d old files of %d bytes, %d new bytes", second, len(old.Files), old.TotalBytes(), newBytes)
		}
		if uploadedBytes != newBytes {
			t.Fatalf("OnBytes counted %d, %d uploaded", uploadedBytes, newBytes)
		}
		for _, f := range first.Manifest.Files {
			g, ok := second.Manifest.Lookup(f.Name)
			if !ok || g.Blob != f.Blob {
				t.Fatalf("file %s not reused: %+v", f.Name, g)
			}
		}
		if n := len(keysUnder(t, repo, BlobPrefix(testShard))); n != len(meta.Files) {
			t.Fatalf("%d blobs for %d distinct files", n, len(meta.Files))
		}
		latest, err := Latest(ctx, repo, testShard)
		if err != nil || latest.ID != second.Manifest.ID {
			t.Fatalf("latest = %v, %v; want %s", latest, err, second.Manifest.ID)
		}
		// A merge makes new physical files with the same content: nothing is
		// reused.
		if err := s.Merge(); err != nil {
			t.Fatal(err)
		}
		third, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if third.ReusedFiles != 0 || third.UploadedBytes != s.Metadata().TotalBytes() {
			t.Fatalf("after merge %+v", third)
		}
		if d := digest(t, restore(t, repo, second.Manifest, nil)); d != digest(t, s) {
			t.Fatal("incremental snapshot restores other content")
		}
	})

	t.Run("PinDuringFlushAndMerge", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 4, 50, 2000)
		want := digest(t, s)
		pinned := s.Metadata()
		var once sync.Once
		res, err := Create(ctx, repo, StoreSource(s), CreateOptions{
			Concurrency: 1,
			Throttle: func(context.Context, int) error {
				var err error
				once.Do(func() {
					// In the middle of the upload: new writes, a flush and a
					// merge that replaces every file of the pinned commit.
					if err = addSegmentErr(s, 10, 100); err == nil {
						err = s.Merge()
					}
				})
				return err
			},
		})
		if err != nil {
			t.Fatalf("create with a merge during the upload: %v", err)
		}
		if res.Manifest.Generation != pinned.Generation || !slices.Equal(res.Manifest.FileMetas(), pinned.Files) {
			t.Fatal("snapshot is not of the commit pinned at its start")
		}
		for _, f := range pinned.Files {
			if s.Pinned(f.Name) {
				t.Fatalf("%s still pinned after Create", f.Name)
			}
			if _, err := os.Stat(filepath.Join(s.Path(), f.Name)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s of the merged-away commit still on disk after release: %v", f.Name, err)
			}
		}
		if got := digest(t, restore(t, repo, res.Manifest, nil)); got != want {
			t.Fatal("snapshot taken during a merge restores other content")
		}
	})

	t.Run("CorruptLocalFile", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 2, 20, 1000)
		victim := s.Metadata().Files[1].Name
		flipByte(t, filepath.Join(s.Path(), victim), 100)
		_, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), victim) {
			t.Fatalf("create from a damaged file: %v, want ErrChecksum naming %s", err, victim)
		}
		if got := keysUnder(t, repo, ManifestPrefix(testShard)); len(got) != 0 {
			t.Fatalf("a manifest was written: %q", got)
		}
		for _, k := range keysUnder(t, repo, BlobPrefix(testShard)) {
			if strings.Contains(k, victim) {
				t.Fatalf("the damaged file was stored as %s", k)
			}
		}
	})

	t.Run("LatestOfNothingIsNotFound", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		_, err := Latest(ctx, repo, testShard)
		checkNotFound(t, "latest of an empty repository", err)
		entries, err := List(ctx, repo, testShard)
		if err != nil || len(entries) != 0 {
			t.Fatalf("list = %v, %v", entries, err)
		}
		_, err = Read(ctx, repo, testShard, NewSnapshotID(time.Now()))
		checkNotFound(t, "read of a missing snapshot", err)
		_, err = Delete(ctx, repo, testShard, NewSnapshotID(time.Now()), DeleteOptions{})
		checkNotFound(t, "delete of a missing snapshot", err)
		if _, err := Read(ctx, repo, testShard, "../../x"); err == nil {
			t.Fatal("read of an invalid id: no error")
		}
	})

	t.Run("MissingAndTruncatedManifest", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 2, 20, 500)
		res, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		key := ManifestKey(testShard, res.Manifest.ID)
		data, _ := EncodeManifest(res.Manifest)
		if err := repo.Put(ctx, key, strings.NewReader(string(data[:len(data)/2])), int64(len(data)/2)); err != nil {
			t.Fatal(err)
		}
		_, err = Read(ctx, repo, testShard, res.Manifest.ID)
		if !errors.Is(err, ErrCorruptManifest) || !strings.Contains(err.Error(), key) {
			t.Fatalf("read of a truncated manifest: %v", err)
		}
		_, err = Latest(ctx, repo, testShard)
		if !errors.Is(err, ErrCorruptManifest) || errors.Is(err, ErrNotFound) {
			t.Fatalf("latest with only a truncated manifest: %v, want ErrCorruptManifest", err)
		}
		entries, err := List(ctx, repo, testShard)
		if err != nil || len(entries) != 1 || !errors.Is(entries[0].Err, ErrCorruptManifest) {
			t.Fatalf("list = %+v, %v", entries, err)
		}
		// An older good snapshot is still found past a corrupt newer one.
		// (Ids sort by start time: write the good one with an older id.)
		good := *res.Manifest
		good.ID = NewSnapshotID(good.StartTime.Add(-time.Hour))
		good.StartTime, good.EndTime = good.StartTime.Add(-time.Hour), good.EndTime.Add(-time.Hour)
		gdata, _ := EncodeManifest(&good)
		if err := repo.Put(ctx, ManifestKey(testShard, good.ID), strings.NewReader(string(gdata)), int64(len(gdata))); err != nil {
			t.Fatal(err)
		}
		latest, err := Latest(ctx, repo, testShard)
		if err != nil || latest.ID != good.ID {
			t.Fatalf("latest past a corrupt manifest = %v, %v", latest, err)
		}
		// A manifest whose content names another snapshot is corrupt.
		if err := repo.Put(ctx, key, strings.NewReader(string(gdata)), int64(len(gdata))); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(ctx, repo, testShard, res.Manifest.ID); !errors.Is(err, ErrCorruptManifest) {
			t.Fatalf("manifest under another id: %v", err)
		}
		// Missing.
		if err := repo.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		_, err = Read(ctx, repo, testShard, res.Manifest.ID)
		checkNotFound(t, "read of a deleted manifest", err)
	})

	t.Run("DeleteAndGC", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 3, 20, 500)
		var ids []string
		var results []*CreateResult
		for i := range 4 {
			if i > 0 {
				addSegment(t, s, 5, 500)
			}
			if i == 2 {
				if err := s.Merge(); err != nil {
					t.Fatal(err)
				}
			}
			res, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, res.Manifest.ID)
			results = append(results, res)
			time.Sleep(2 * time.Millisecond) // distinct ids
		}
		// Delete the second: its blobs shared with the first stay; the one
		// blob only it had is marked for deletion, not deleted yet.
		del, err := Delete(ctx, repo, testShard, ids[1], DeleteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if del.MarkedBlobs != 1 || del.DeletedBlobs != 0 || del.KeptBlobs != "" {
			t.Fatalf("delete result %+v: want the one blob only snapshot 2 had marked", del)
		}
		if n := len(keysUnder(t, repo, MarkPrefix(testShard))); n != 1 {
			t.Fatalf("%d deletion marks, want 1", n)
		}
		if _, err := Read(ctx, repo, testShard, ids[0]); err != nil {
			t.Fatal(err)
		}
		if d := digest(t, restore(t, repo, results[0].Manifest, nil)); d == "" {
			t.Fatal("empty digest")
		}
		// GC keeping the newest one: it marks, and deletes nothing before
		// the delay has passed.
		gc, err := GC(ctx, repo, testShard, 1, DeleteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gc.Kept, ids[3:]) || !slices.Equal(gc.Deleted, []string{ids[0], ids[2]}) || gc.MarkedBlobs == 0 || gc.DeletedBlobs != 0 {
			t.Fatalf("gc = %+v", gc)
		}
		// Past the delay, the next GC deletes every marked blob, then the marks.
		later := DeleteOptions{Now: func() time.Time { return time.Now().Add(2 * DefaultDeletionDelay) }}
		again, err := GC(ctx, repo, testShard, 1, later)
		if err != nil || len(again.Deleted) != 0 || again.DeletedBlobs != gc.MarkedBlobs+del.MarkedBlobs || again.FreedBytes == 0 {
			t.Fatalf("gc past the delay = %+v, %v; want the %d marked blobs deleted", again, err, gc.MarkedBlobs+del.MarkedBlobs)
		}
		if marks := keysUnder(t, repo, MarkPrefix(testShard)); len(marks) != 0 {
			t.Fatalf("marks left after their blobs were deleted: %q", marks)
		}
		last := results[3].Manifest
		var want []string
		for _, f := range last.Files {
			want = append(want, f.Blob)
		}
		slices.Sort(want)
		if got := keysUnder(t, repo, BlobPrefix(testShard)); !slices.Equal(got, want) {
			t.Fatalf("blobs after gc %q, want those of the kept snapshot %q", got, want)
		}
		if digest(t, restore(t, repo, last, nil)) != digest(t, s) {
			t.Fatal("kept snapshot restores other content")
		}
		if gc, err := GC(ctx, repo, testShard, 5, later); err != nil || len(gc.Deleted) != 0 || gc.DeletedBlobs != 0 {
			t.Fatalf("gc with nothing to do = %+v, %v", gc, err)
		}
		if _, err := GC(ctx, repo, testShard, -1, DeleteOptions{}); err == nil {
			t.Fatal("gc keep -1: no error")
		}
	})

	t.Run("GCStopsWholeOnUnreadableManifest", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 2, 20, 500)
		var ids []string
		for range 3 {
			addSegment(t, s, 5, 500)
			if err := s.Merge(); err != nil {
				t.Fatal(err)
			}
			res, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, res.Manifest.ID)
			time.Sleep(2 * time.Millisecond)
		}
		// Damage the newest manifest, which GC would keep.
		key := ManifestKey(testShard, ids[2])
		if err := repo.Put(ctx, key, strings.NewReader("{not json"), 9); err != nil {
			t.Fatal(err)
		}
		before := keysUnder(t, repo, "")
		_, err := GC(ctx, repo, testShard, 1, DeleteOptions{})
		if !errors.Is(err, ErrCorruptManifest) || !strings.Contains(err.Error(), "nothing deleted") {
			t.Fatalf("gc with a corrupt manifest: %v", err)
		}
		if after := keysUnder(t, repo, ""); !slices.Equal(before, after) {
			t.Fatalf("gc deleted something: before %q after %q", before, after)
		}
		if _, err := Unfinished(ctx, repo, testShard, 0, time.Now()); !errors.Is(err, ErrCorruptManifest) {
			t.Fatalf("unfinished with a corrupt manifest: %v", err)
		}
		// Delete of another snapshot removes its manifest but keeps blobs.
		del, err := Delete(ctx, repo, testShard, ids[0], DeleteOptions{})
		if err != nil || del.MarkedBlobs != 0 || del.DeletedBlobs != 0 || del.KeptBlobs == "" {
			t.Fatalf("delete while another manifest is corrupt = %+v, %v", del, err)
		}
		// The corrupt manifest itself can be deleted.
		if del, err := Delete(ctx, repo, testShard, ids[2], DeleteOptions{}); err != nil || del.KeptBlobs == "" {
			t.Fatalf("delete of the corrupt manifest = %+v, %v", del, err)
		}
		// Now every manifest reads: the orphans are unfinished uploads,
		// marked first, deleted once the marks are older than the delay.
		orphans, err := RemoveUnfinished(ctx, repo, testShard, 0, DeleteOptions{Now: func() time.Time { return time.Now().Add(time.Second) }})
		if err != nil || len(orphans.Marked) == 0 || len(orphans.Deleted) != 0 {
			t.Fatalf("remove unfinished = %+v, %v", orphans, err)
		}
		gone, err := RemoveUnfinished(ctx, repo, testShard, 0, DeleteOptions{Now: func() time.Time { return time.Now().Add(2 * DefaultDeletionDelay) }})
		if err != nil || len(gone.Deleted) != len(orphans.Marked) || gone.Deleted[0].Reason != ReasonUnfinished {
			t.Fatalf("remove unfinished past the delay = %+v, %v", gone, err)
		}
		m, err := Read(ctx, repo, testShard, ids[1])
		if err != nil {
			t.Fatal(err)
		}
		restore(t, repo, m, nil)
	})

	t.Run("Unfinished", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 2, 20, 500)
		res, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		stray := BlobPrefix(testShard) + "seg_left_behind-0123456789ab"
		if err := repo.Put(ctx, stray, strings.NewReader("partial"), 7); err != nil {
			t.Fatal(err)
		}
		if got, err := Unfinished(ctx, repo, testShard, time.Hour, time.Now()); err != nil || len(got) != 0 {
			t.Fatalf("unfinished within the grace period = %v, %v", got, err)
		}
		// Two hours later it is marked, and its mark is older than the
		// delay at once.
		got, err := RemoveUnfinished(ctx, repo, testShard, time.Hour, DeleteOptions{Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
		if err != nil || len(got.Marked) != 1 || got.Marked[0].Key != stray || len(got.Deleted) != 1 || got.Deleted[0].Key != stray {
			t.Fatalf("remove unfinished = %+v, %v", got, err)
		}
		if n := len(keysUnder(t, repo, BlobPrefix(testShard))); n != len(res.Manifest.Files) {
			t.Fatalf("%d blobs left, %d referenced", n, len(res.Manifest.Files))
		}
		restore(t, repo, res.Manifest, nil)
	})
}

// flipByte inverts one byte of a file in place.
func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
