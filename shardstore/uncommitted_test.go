package shardstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A shard opened Uncommitted (a recovery onto a node without it) is no
// shard on disk until its staging publishes: not listed, no metadata, no
// flush and no commit to pin; the publish makes it one, and it reopens as
// one.
func TestUncommittedShardIsNoShardUntilItPublishes(t *testing.T) {
	src := openNew(t, t.TempDir(), Options{})
	mustIndex(t, src, 50, 0)
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	meta := src.Metadata()
	data, err := os.ReadFile(filepath.Join(src.Path(), meta.Files[0].Name))
	if err != nil {
		t.Fatal(err)
	}

	base := t.TempDir()
	id := ShardID{Index: "idx", Shard: 0}
	s, err := Open(base, id, Options{Create: true, Uncommitted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if s.Committed() || Exists(base, id) {
		t.Fatal("an uncommitted shard counts as committed or existing")
	}
	if ids, err := List(base); err != nil || len(ids) != 0 {
		t.Fatalf("List = %v, %v; want no shard", ids, err)
	}
	if _, err := ReadMetadata(base, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadMetadata = %v, want ErrNotFound", err)
	}
	if _, err := Open(base, ShardID{Index: "idx", Shard: 1}, Options{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of another absent shard = %v", err)
	}
	if err := s.Flush(); !errors.Is(err, ErrNoCommit) {
		t.Fatalf("Flush = %v, want ErrNoCommit", err)
	}
	if err := s.Merge(); !errors.Is(err, ErrNoCommit) {
		t.Fatalf("Merge = %v, want ErrNoCommit", err)
	}
	if _, err := s.AcquireCommit(); !errors.Is(err, ErrNoCommit) {
		t.Fatalf("AcquireCommit = %v, want ErrNoCommit", err)
	}
	if gens, _ := commitGens(s.Path()); len(gens) != 0 {
		t.Fatalf("commit points on disk: %v", gens)
	}

	st, err := s.StartStaging("rec-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.Dir(), meta.Files[0].Name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.Publish(meta.Files, meta.Commit); err != nil {
		t.Fatal(err)
	}
	if !s.Committed() || !Exists(base, id) {
		t.Fatal("published, but not a shard")
	}
	want := digest(t, src)
	if digest(t, s) != want {
		t.Fatal("published copy differs")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(base, id, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, s) != want || s.Stats().HistoryUUID != meta.Commit.HistoryUUID {
		t.Fatal("reopened copy differs")
	}
}
