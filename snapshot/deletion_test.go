package snapshot

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recoverd/recoverd/internal/retry"
)

// testConcurrentDeletion checks the deletion protocol (deletion.go) on a
// repository: a Create never reuses a blob marked for deletion, a blob a
// manifest references again is never collected, and a Create whose blobs
// another deleter marks or removes while it runs (before or after its
// manifest is written) ends with a manifest whose every blob is there.
func testConcurrentDeletion(t *testing.T, newRepo func(t *testing.T) Repository) {
	later := DeleteOptions{Now: func() time.Time { return time.Now().Add(2 * DefaultDeletionDelay) }}
	blobsOf := func(m *Manifest) []string {
		var out []string
		for _, f := range m.Files {
			out = append(out, f.Blob)
		}
		return out
	}
	requireWhole := func(t *testing.T, repo Repository, m *Manifest, want string) {
		t.Helper()
		keys := keysUnder(t, repo, BlobPrefix(m.Shard))
		for _, b := range blobsOf(m) {
			if !slices.Contains(keys, b) {
				t.Fatalf("snapshot %s names blob %s, which is gone", m.ID, b)
			}
		}
		if got, err := Read(context.Background(), repo, m.Shard, m.ID); err != nil || !slices.Equal(blobsOf(got), blobsOf(m)) {
			t.Fatalf("stored manifest %v (%v) is not the one returned", got, err)
		}
		if d := digest(t, restore(t, repo, m, nil)); d != want {
			t.Fatalf("snapshot %s restores digest %s, want %s", m.ID, d, want)
		}
	}

	t.Run("CreateNeverReusesAMarkedBlob", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 2, 20, 500)
		s1, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// A deleter that raced a Create marked blobs a manifest still
		// references: they may be deleted once it is gone, so no new
		// snapshot takes them.
		if _, err := mark(ctx, repo, retry.Repository, testShard, blobsOf(s1.Manifest), ReasonGC, time.Now()); err != nil {
			t.Fatal(err)
		}
		s2, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s2.ReusedFiles != 0 || s2.UploadedFiles != len(s1.Manifest.Files) {
			t.Fatalf("create after the blobs were marked reused %d files, uploaded %d", s2.ReusedFiles, s2.UploadedFiles)
		}
		for _, b := range blobsOf(s2.Manifest) {
			if slices.Contains(blobsOf(s1.Manifest), b) {
				t.Fatalf("blob %s, marked for deletion, reused", b)
			}
		}
		if g, err := GC(ctx, repo, testShard, 1, later); err != nil || g.DeletedBlobs != len(s1.Manifest.Files) {
			t.Fatalf("gc past the delay = %+v, %v", g, err)
		}
		requireWhole(t, repo, s2.Manifest, digest(t, s))
	})

	t.Run("MarkedBlobReferencedAgainIsKept", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 2, 20, 500)
		s1, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Marks written after a Create checked its blobs, by a deleter
		// that did not see its manifest yet.
		if _, err := mark(ctx, repo, retry.Repository, testShard, blobsOf(s1.Manifest), ReasonGC, time.Now()); err != nil {
			t.Fatal(err)
		}
		res, err := RemoveUnfinished(ctx, repo, testShard, 0, later)
		if err != nil || len(res.Deleted) != 0 {
			t.Fatalf("a sweep past the delay = %+v, %v; the blobs are referenced", res, err)
		}
		if n := len(keysUnder(t, repo, MarkPrefix(testShard))); n != len(s1.Manifest.Files) {
			t.Fatalf("%d marks left, want %d: a mark stays while its blob exists", n, len(s1.Manifest.Files))
		}
		requireWhole(t, repo, s1.Manifest, digest(t, s))
	})

	t.Run("SweepDuringCreate", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 3, 20, 500)
		var (
			seen  []string
			swept *SweepResult
		)
		// Files upload one by one; when the third starts, a sweep with no
		// grace and past every delay deletes the two uploads no manifest
		// references yet.
		res, err := Create(ctx, repo, StoreSource(s), CreateOptions{Concurrency: 1, OnBytes: func(file string, n int64) {
			if !slices.Contains(seen, file) {
				seen = append(seen, file)
			}
			if len(seen) == 3 && swept == nil {
				var err error
				if swept, err = RemoveUnfinished(ctx, repo, testShard, 0, later); err != nil {
					t.Error(err)
				}
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		if swept == nil || len(swept.Deleted) != 2 {
			t.Fatalf("the sweep during the create = %+v", swept)
		}
		requireWhole(t, repo, res.Manifest, digest(t, s))
		if res.UploadedFiles != 3 || res.ReusedFiles != 0 {
			t.Fatalf("result %+v", res)
		}
	})

	t.Run("DeleteDuringCreate", func(t *testing.T) {
		repo := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 2, 20, 500)
		s1, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		addSegment(t, s, 20, 500)
		var once sync.Once
		// While the new segment uploads, another deleter removes the
		// snapshot whose blobs this one reuses, past every delay.
		res, err := Create(ctx, repo, StoreSource(s), CreateOptions{OnBytes: func(string, int64) {
			once.Do(func() {
				if d, err := Delete(ctx, repo, testShard, s1.Manifest.ID, later); err != nil || d.DeletedBlobs != 2 {
					t.Errorf("delete during the create = %+v, %v", d, err)
				}
			})
		}})
		if err != nil {
			t.Fatal(err)
		}
		requireWhole(t, repo, res.Manifest, digest(t, s))
	})

	t.Run("DeletedRightAfterTheManifest", func(t *testing.T) {
		base := newRepo(t)
		ctx := ctxTimeout(t, time.Minute)
		s := newShard(t, t.TempDir(), testShard, 2, 20, 500)
		s1, err := Create(ctx, base, StoreSource(s), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		addSegment(t, s, 20, 500)
		// A deleter that read the manifests before the new one was
		// written deletes a reused blob just as the manifest is written:
		// the check after the write uploads it again.
		victim := s1.Manifest.Files[0].Blob
		repo := &putHook{Repository: base, before: func(key string) {
			if strings.HasPrefix(key, ManifestPrefix(testShard)) {
				base.Delete(ctx, victim)
			}
		}}
		res, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(blobsOf(res.Manifest), victim) {
			t.Fatalf("the manifest still names the deleted blob %s", victim)
		}
		requireWhole(t, base, res.Manifest, digest(t, s))
	})
}

// putHook calls before ahead of every Put.
type putHook struct {
	Repository
	before func(key string)
}

func (p *putHook) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	p.before(key)
	return p.Repository.Put(ctx, key, r, size)
}
