package snapshot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/shardstore"
)

// putBytes overwrites key with data.
func putBytes(t *testing.T, repo Repository, key string, data []byte) {
	t.Helper()
	if err := repo.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

func getBytes(t *testing.T, repo Repository, key string) []byte {
	t.Helper()
	body, err := repo.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func blobsOf(cs []BlobCheck) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Blob)
	}
	return out
}

// TestVerify: a scrub of a repository with a corrupt, a truncated, a
// longer and a missing blob reports each (a blob shared by two snapshots
// once, naming both), marks them bad, and leaves every blob where it is;
// once the blobs are repaired a second run clears the marks, and a mark no
// snapshot references is cleared too.
func TestVerify(t *testing.T) {
	repo := newLocalRepo(t)
	ctx := ctxTimeout(t, time.Minute)
	s := newShard(t, t.TempDir(), testShard, 5, 40, 500)
	first, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addSegment(t, s, 40, 500)
	second, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := shardstore.ShardID{Index: "logs", Shard: 4}
	if _, err := Create(ctx, repo, StoreSource(newShard(t, t.TempDir(), other, 1, 10, 100)), CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if second.ReusedFiles != 5 {
		t.Fatalf("the second snapshot reused %d files, want the first's 5", second.ReusedFiles)
	}

	// Clean: nothing to report.
	res, err := Verify(ctx, repo, VerifyOptions{})
	if err != nil || !res.OK() || res.Shards != 2 || res.Snapshots != 3 || res.Blobs != 7 {
		t.Fatalf("clean repository: %+v, %v", res, err)
	}
	if res.Bytes != second.Manifest.TotalBytes()+mustLatest(t, repo, other).TotalBytes() {
		t.Fatalf("read %d bytes", res.Bytes)
	}

	f := first.Manifest.Files
	orig := map[string][]byte{}
	for _, e := range f[:4] {
		orig[e.Blob] = getBytes(t, repo, e.Blob)
	}
	flipped := slices.Clone(orig[f[0].Blob])
	flipped[len(flipped)/2] ^= 0xff
	putBytes(t, repo, f[0].Blob, flipped)                                        // same length, flipped byte
	putBytes(t, repo, f[1].Blob, orig[f[1].Blob][:len(orig[f[1].Blob])-10])      // truncated
	putBytes(t, repo, f[2].Blob, append(slices.Clone(orig[f[2].Blob]), 1, 2, 3)) // longer
	if err := repo.Delete(ctx, f[3].Blob); err != nil {                          // gone
		t.Fatal(err)
	}
	var throttled atomic.Int64
	var seen []string
	res, err = Verify(ctx, repo, VerifyOptions{Shards: []shardstore.ShardID{testShard}, Concurrency: 3,
		Throttle: func(_ context.Context, n int) error { throttled.Add(int64(n)); return nil },
		OnBlob:   func(c BlobCheck) { seen = append(seen, c.Blob) }, FoundBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.Shards != 1 || res.Blobs != 6 || len(seen) != 6 {
		t.Fatalf("result %+v", res)
	}
	if got, want := blobsOf(res.Corrupt), []string{f[0].Blob, f[1].Blob, f[2].Blob}; !slices.Equal(got, want) {
		t.Fatalf("corrupt %v, want %v", got, want)
	}
	if got := blobsOf(res.Missing); !slices.Equal(got, []string{f[3].Blob}) {
		t.Fatalf("missing %v, want %s", got, f[3].Blob)
	}
	for _, c := range append(res.Corrupt, res.Missing...) {
		if len(c.Refs) != 2 || c.Refs[0].Snapshot != first.Manifest.ID || c.Refs[1].Snapshot != second.Manifest.ID || !c.Marked {
			t.Fatalf("%s: refs %v marked %v: want both snapshots, marked", c.Blob, c.Refs, c.Marked)
		}
	}
	if !strings.Contains(res.Corrupt[2].Detail, "longer") || !strings.Contains(res.Corrupt[1].Detail, "bytes read") {
		t.Fatalf("details: %q, %q", res.Corrupt[2].Detail, res.Corrupt[1].Detail)
	}
	if throttled.Load() == 0 {
		t.Fatal("the throttle was never asked")
	}
	bad, err := BadBlobs(ctx, repo, testShard)
	if err != nil || len(bad) != 4 {
		t.Fatalf("marks %v, %v", bad, err)
	}
	b, err := ReadBadBlob(ctx, repo, testShard, f[3].Blob)
	if err != nil || b.Cause != BadMissing || b.File != f[3].Name || b.Snapshot != first.Manifest.ID || b.FoundBy != "test" || b.MarkedAt.IsZero() {
		t.Fatalf("mark of the missing blob: %+v, %v", b, err)
	}
	for _, e := range f[:3] { // nothing deleted
		if _, err := repo.Stat(ctx, e.Blob); err != nil {
			t.Fatalf("blob %s: %v", e.Blob, err)
		}
	}

	// Read-only: the same report, no mark touched.
	for _, e := range f[:3] {
		putBytes(t, repo, e.Blob, orig[e.Blob])
	}
	ro, err := Verify(ctx, repo, VerifyOptions{Shards: []shardstore.ShardID{testShard}, ReadOnly: true})
	if err != nil || len(ro.Corrupt) != 0 || len(ro.Missing) != 1 || len(ro.Cleared) != 0 || ro.Missing[0].Marked {
		t.Fatalf("read-only run: %+v, %v", ro, err)
	}
	if bad, _ := BadBlobs(ctx, repo, testShard); len(bad) != 4 {
		t.Fatalf("a read-only run changed the marks: %v", bad)
	}

	// Repaired: the marks go, but the missing blob's stays. A mark whose
	// blob no snapshot references goes too.
	stale := BlobPrefix(testShard) + "seg_gone-0123456789ab"
	if err := MarkBad(ctx, repo, testShard, BadBlob{Blob: stale, File: "seg_gone", Cause: BadChecksum}); err != nil {
		t.Fatal(err)
	}
	res, err = Verify(ctx, repo, VerifyOptions{})
	if err != nil || len(res.Corrupt) != 0 || len(res.Missing) != 1 || len(res.Cleared) != 4 {
		t.Fatalf("after the repair: %+v, %v", res, err)
	}
	if bad, _ := BadBlobs(ctx, repo, testShard); len(bad) != 1 || !bad[f[3].Blob] {
		t.Fatalf("marks after the repair: %v", bad)
	}
	if res.Cleared[3].Blob != stale || res.Cleared[3].Reason != "no snapshot references it" {
		t.Fatalf("cleared %+v", res.Cleared)
	}
}

func mustLatest(t *testing.T, repo Repository, id shardstore.ShardID) *Manifest {
	t.Helper()
	m, err := Latest(context.Background(), repo, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestVerifyUnavailable: a repository that cannot be read stops the
// verification with ErrUnavailable and marks nothing: unreadable is not
// corrupt.
func TestVerifyUnavailable(t *testing.T) {
	repo := newLocalRepo(t)
	ctx := ctxTimeout(t, time.Minute)
	res, err := Create(ctx, repo, StoreSource(newShard(t, t.TempDir(), testShard, 2, 10, 100)), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	failing := &failGets{Repository: repo, key: res.Manifest.Files[1].Blob}
	_, err = Verify(ctx, failing, VerifyOptions{Retry: retry.Options{MaxElapsed: -1}})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), res.Manifest.Files[1].Blob) {
		t.Fatalf("err %v: want ErrUnavailable naming the blob", err)
	}
	if bad, err := BadBlobs(ctx, repo, testShard); err != nil || len(bad) != 0 {
		t.Fatalf("marks %v, %v", bad, err)
	}
}

// failGets fails every Get of one key as the repository being down.
type failGets struct {
	Repository
	key string
}

func (f *failGets) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if key == f.key {
		return nil, unavailable("get", f.String(), key, errors.New("connection refused"))
	}
	return f.Repository.Get(ctx, key)
}

// TestCreateReuploadsBadBlobs: a snapshot never reuses a blob marked bad:
// the file gets a fresh full copy under a new key and the result names
// it; the other files are reused.
func TestCreateReuploadsBadBlobs(t *testing.T) {
	repo := newLocalRepo(t)
	ctx := ctxTimeout(t, time.Minute)
	s := newShard(t, t.TempDir(), testShard, 3, 20, 200)
	first, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	victim := first.Manifest.Files[1]
	if err := MarkBad(ctx, repo, testShard, BadBlob{Blob: victim.Blob, File: victim.Name, Cause: BadChecksum, FoundBy: "test"}); err != nil {
		t.Fatal(err)
	}
	bad, err := BadBlobs(ctx, repo, testShard)
	if err != nil || !bad[victim.Blob] || len(bad.Files(first.Manifest)) != 1 {
		t.Fatalf("marks %v, %v", bad, err)
	}
	second, err := Create(ctx, repo, StoreSource(s), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if second.UploadedFiles != 1 || second.ReusedFiles != 2 || !slices.Equal(second.ReplacedBad, []string{victim.Name}) {
		t.Fatalf("second snapshot: %+v", second)
	}
	got, _ := second.Manifest.Lookup(victim.Name)
	if got.Blob == victim.Blob || !got.SameAs(victim.FileMeta) {
		t.Fatalf("%s: blob %s, want a new blob of the same file", victim.Name, got.Blob)
	}
	if bad.Files(second.Manifest) != nil {
		t.Fatal("the new snapshot references a bad blob")
	}
	// The bad blob and its mark stay: a mark is never a reason to delete.
	if _, err := repo.Stat(ctx, victim.Blob); err != nil {
		t.Fatal(err)
	}
	for _, blob := range []string{"logs/3/snapshots/x", "logs/3/blobs/../x", "logs/4/blobs/x"} {
		if err := MarkBad(ctx, repo, testShard, BadBlob{Blob: blob}); err == nil {
			t.Fatalf("a mark of %s, not a blob of %s, was written", blob, testShard)
		}
	}
}
