package snapshot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/shardstore"
)

func TestLocalDownloads(t *testing.T) {
	testDownloads(t, func(t *testing.T) Repository { return newLocalRepo(t) }, corruptLocalBlob)
}

// corruptLocalBlob flips a byte of the blob's file in place.
func corruptLocalBlob(t *testing.T, repo Repository, key string) {
	r := repo.(*LocalRepository)
	flipByte(t, filepath.Join(r.Root(), filepath.FromSlash(key)), 10)
}

// corruptS3Blob overwrites the object with bytes of the same length, one
// of them different (MinIO's on-disk format is not ours to edit).
func corruptS3Blob(t *testing.T, repo Repository, key string) {
	ctx := ctxTimeout(t, time.Minute)
	body, err := repo.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(body)
	body.Close()
	if err != nil {
		t.Fatal(err)
	}
	data[10] ^= 0xff
	if err := repo.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// snapshotFixture is a shard with a snapshot in repo.
type snapshotFixture struct {
	src *shardstore.Shard
	m   *Manifest
	tgt *shardstore.Shard
	st  *stage
}

func newFixture(t *testing.T, repo Repository, segments, docs, valueSize int) *snapshotFixture {
	t.Helper()
	src := newShard(t, t.TempDir(), testShard, segments, docs, valueSize)
	res, err := Create(ctxTimeout(t, time.Minute), repo, StoreSource(src), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tgt := newShard(t, t.TempDir(), testShard, 0, 0, 0)
	st, err := startStage(tgt, "rec-1")
	if err != nil {
		t.Fatal(err)
	}
	return &snapshotFixture{src: src, m: res.Manifest, tgt: tgt, st: st}
}

func testDownloads(t *testing.T, newRepo func(t *testing.T) Repository, corrupt func(t *testing.T, repo Repository, key string)) {
	t.Run("PartsAndProgress", func(t *testing.T) {
		repo := newRepo(t)
		fx := newFixture(t, repo, 3, 100, 3000)
		var mu sync.Mutex
		perFile := map[string]int64{}
		var throttled atomic.Int64
		d := &Downloader{
			PartSize: 64 << 10, PartConcurrency: 3, FileConcurrency: 2,
			Throttle: func(_ context.Context, n int) error { throttled.Add(int64(n)); return nil },
			OnBytes:  func(f string, n int64) { mu.Lock(); perFile[f] += n; mu.Unlock() },
		}
		if err := d.Download(ctxTimeout(t, time.Minute), repo, fx.m.Files, fx.st.Area); err != nil {
			t.Fatal(err)
		}
		for _, f := range fx.m.Files {
			if perFile[f.Name] != f.Length {
				t.Fatalf("OnBytes counted %d for %s of %d bytes", perFile[f.Name], f.Name, f.Length)
			}
		}
		if got := d.Stats(); got.Bytes != fx.m.TotalBytes() || got.Files != int64(len(fx.m.Files)) || throttled.Load() != fx.m.TotalBytes() {
			t.Fatalf("stats %+v, throttled %d, total %d", got, throttled.Load(), fx.m.TotalBytes())
		}
		if err := fx.st.Publish(fx.m.FileMetas(), fx.m.Commit); err != nil {
			t.Fatal(err)
		}
		if digest(t, fx.tgt) != digest(t, fx.src) {
			t.Fatal("downloaded shard differs")
		}
	})

	t.Run("CorruptBlob", func(t *testing.T) {
		repo := newRepo(t)
		fx := newFixture(t, repo, 3, 50, 2000)
		victim := fx.m.Files[1]
		corrupt(t, repo, victim.Blob)
		d := &Downloader{PartSize: 32 << 10}
		start := time.Now()
		err := d.Download(ctxTimeout(t, time.Minute), repo, fx.m.Files, fx.st.Area)
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), victim.Name) {
			t.Fatalf("download of a corrupt blob: %v, want ErrChecksum naming %s", err, victim.Name)
		}
		if retry.IsTransient(err) || time.Since(start) > 10*time.Second {
			t.Fatalf("checksum mismatch retried (%v): %v", time.Since(start), err)
		}
		if names := stagedNames(t, fx.st); len(names) != 0 {
			t.Fatalf("staged files left: %q", names)
		}
		// The good files alone download fine.
		if err := d.Download(ctxTimeout(t, time.Minute), repo, []FileEntry{fx.m.Files[0], fx.m.Files[2]}, fx.st.Area); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("MissingBlob", func(t *testing.T) {
		repo := newRepo(t)
		fx := newFixture(t, repo, 2, 20, 1000)
		victim := fx.m.Files[0]
		if err := repo.Delete(context.Background(), victim.Blob); err != nil {
			t.Fatal(err)
		}
		err := (&Downloader{}).Download(ctxTimeout(t, time.Minute), repo, fx.m.Files, fx.st.Area)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), victim.Name) {
			t.Fatalf("download of a missing blob: %v", err)
		}
		if names := stagedNames(t, fx.st); len(names) != 0 {
			t.Fatalf("staged files left: %q", names)
		}
	})

	t.Run("BlobOfOtherLength", func(t *testing.T) {
		repo := newRepo(t)
		fx := newFixture(t, repo, 2, 20, 1000)
		victim := fx.m.Files[1]
		if err := repo.Put(context.Background(), victim.Blob, strings.NewReader("short"), 5); err != nil {
			t.Fatal(err)
		}
		err := (&Downloader{}).DownloadFile(ctxTimeout(t, time.Minute), repo, victim, fx.st.Area)
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), victim.Name) {
			t.Fatalf("download of a blob of another length: %v", err)
		}
		if names := stagedNames(t, fx.st); len(names) != 0 {
			t.Fatalf("staged files left: %q", names)
		}
	})

	t.Run("CancelMidway", func(t *testing.T) {
		repo := newRepo(t)
		fx := newFixture(t, repo, 4, 200, 5000)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var calls atomic.Int64
		d := &Downloader{
			PartSize: 128 << 10, PartConcurrency: 2, FileConcurrency: 4,
			Throttle: func(ctx context.Context, n int) error {
				if calls.Add(1) == 3 {
					cancel()
				}
				return nil
			},
		}
		start := time.Now()
		err := d.Download(ctx, repo, fx.m.Files, fx.st.Area)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("download cancelled midway: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("cancel took %v to return", d)
		}
		if names := stagedNames(t, fx.st); len(names) != 0 {
			t.Fatalf("staged files left after cancel: %q", names)
		}
		if d.Stats().Bytes >= fx.m.TotalBytes() {
			t.Fatal("cancel did not stop the download")
		}
	})

	t.Run("ThrottleError", func(t *testing.T) {
		repo := newRepo(t)
		fx := newFixture(t, repo, 2, 50, 2000)
		stop := errors.New("budget refused")
		d := &Downloader{Throttle: func(context.Context, int) error { return stop }}
		if err := d.Download(ctxTimeout(t, time.Minute), repo, fx.m.Files, fx.st.Area); !errors.Is(err, stop) {
			t.Fatalf("download with a failing throttle: %v", err)
		}
		if names := stagedNames(t, fx.st); len(names) != 0 {
			t.Fatalf("staged files left: %q", names)
		}
	})
}
