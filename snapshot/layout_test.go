package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/shardstore"
)

// TestHashedLayoutRepository: the repository contract holds for the
// hashed layout (a fresh repository opened by URL).
func TestHashedLayoutRepository(t *testing.T) {
	testRepository(t, func(t *testing.T) Repository { return openURL(t, "file://"+filepath.Join(t.TempDir(), "repo")) })
}

func openURL(t *testing.T, url string) Repository {
	t.Helper()
	r, err := OpenRepository(url, S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestHashedLayoutSpreadsIndicesOverPrefixes: indices whose names share
// their first characters (rollover names) spread over the 256 leading
// prefixes.
func TestHashedLayoutSpreadsIndicesOverPrefixes(t *testing.T) {
	used := map[string]int{}
	for i := 1; i <= 1000; i++ {
		key := ObjectKey(LayoutHashed, ManifestKey(shardstore.ShardID{Index: fmt.Sprintf("logs-%06d", i), Shard: 0}, "s-1"))
		hh, rest, _ := strings.Cut(key, "/")
		if len(hh) != 2 || !strings.HasPrefix(rest, "logs-") {
			t.Fatalf("key %s", key)
		}
		used[hh]++
	}
	most := 0
	for _, n := range used {
		most = max(most, n)
	}
	if len(used) < 240 || most > 15 {
		t.Fatalf("1,000 indices use %d of 256 prefixes, the busiest %d: not spread", len(used), most)
	}
}

// TestNewRepositoryIsHashedAndMarked: a repository first used empty is
// hashed, says so in its marker, and stays so for every later reader;
// the shard's snapshots read back through the layout.
func TestNewRepositoryIsHashedAndMarked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	ctx := ctxTimeout(t, time.Minute)
	src := newShard(t, t.TempDir(), testShard, 2, 50, 100)
	res, err := Create(ctx, openURL(t, "file://"+dir), StoreSource(src), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var m layoutMarker
	if b, err := os.ReadFile(filepath.Join(dir, LayoutKey)); err != nil || json.Unmarshal(b, &m) != nil || m.Layout != LayoutHashed {
		t.Fatalf("marker %q, %v", b, err)
	}
	hh := strings.TrimSuffix(hashPrefix(ShardPrefix(testShard)), "/")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != LayoutKey && e.Name() != hh {
			t.Fatalf("%s at the repository's root: want only %s and %s/", e.Name(), LayoutKey, hh)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(ObjectKey(LayoutHashed, ManifestKey(testShard, res.Manifest.ID))))); err != nil {
		t.Fatal(err)
	}
	// Another process (a fresh handle) reads it back by the marker.
	again := openURL(t, "file://"+dir)
	if got, err := Latest(ctx, again, testShard); err != nil || got.ID != res.Manifest.ID {
		t.Fatalf("latest through a new handle: %v, %v", got, err)
	}
	if shards, err := Shards(ctx, again); err != nil || len(shards) != 1 || shards[0] != testShard {
		t.Fatalf("shards %v, %v", shards, err)
	}
	// Seen flat (no layout), it holds no shard: flat readers never take
	// hashed keys for shards of their own.
	flat, err := NewLocalRepository(dir)
	if err != nil {
		t.Fatal(err)
	}
	if shards, err := Shards(ctx, flat); err != nil || len(shards) != 0 {
		t.Fatalf("shards seen flat: %v, %v", shards, err)
	}
}

// TestRepositoryWithoutMarkerStaysFlat: a repository written before
// layouts existed keeps its keys, and its snapshots stay usable.
func TestRepositoryWithoutMarkerStaysFlat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	ctx := ctxTimeout(t, time.Minute)
	flat, err := NewLocalRepository(dir)
	if err != nil {
		t.Fatal(err)
	}
	src := newShard(t, t.TempDir(), testShard, 2, 50, 100)
	old, err := Create(ctx, flat, StoreSource(src), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	repo := openURL(t, "file://"+dir)
	if got, err := Latest(ctx, repo, testShard); err != nil || got.ID != old.Manifest.ID {
		t.Fatalf("latest of the old repository: %v, %v", got, err)
	}
	addSegment(t, src, 20, 100)
	next, err := Create(ctx, repo, StoreSource(src), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(ManifestKey(testShard, next.Manifest.ID)))); err != nil {
		t.Fatalf("a new snapshot of a flat repository is not flat: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, LayoutKey)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a flat repository got a marker: %v", err)
	}
	if layout, err := LayoutOf(ctx, repo); err != nil || layout != LayoutFlat {
		t.Fatalf("layout %d, %v", layout, err)
	}
}

// TestUnreadableRepositoryIsNotTakenForEmpty: a repository that does not
// answer when its layout is first needed fails the call; it is not taken
// for an empty (hashed) one, which would hide every snapshot it holds.
func TestUnreadableRepositoryIsNotTakenForEmpty(t *testing.T) {
	m := testutil.StartMinIO(t)
	bucket := m.MakeBucket("snap")
	ctx := ctxTimeout(t, 2*time.Minute)
	src := newShard(t, t.TempDir(), testShard, 2, 50, 100)
	old, err := Create(ctx, newS3RepoIn(t, m, bucket, "repo", S3Options{}), StoreSource(src), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := faultOptions
	opts.AccessKey, opts.SecretKey = m.AccessKey, m.SecretKey
	opts.Getenv = func(string) string { return "" }
	repo, err := OpenRepository(fmt.Sprintf("s3://%s/repo?endpoint=%s&tls=false", bucket, m.Endpoint), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	m.Stop()
	if _, err := Latest(ctx, repo, testShard); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("latest with MinIO stopped: %v, want ErrUnavailable", err)
	}
	m.Restart()
	if got, err := Latest(ctx, repo, testShard); err != nil || got.ID != old.Manifest.ID {
		t.Fatalf("latest once MinIO is back: %v, %v", got, err)
	}
	if layout, err := LayoutOf(ctx, repo); err != nil || layout != LayoutFlat {
		t.Fatalf("layout %d, %v", layout, err)
	}
}
