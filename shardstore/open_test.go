package shardstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenCleansCrashLeftovers(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	mustIndex(t, s, 10, 0)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	want := digest(t, s)
	dir := s.Path()
	st, err := s.StartStaging("rec-3")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.Dir(), "seg_x"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	// What a crash leaves: staging survives (the process died), a temp
	// commit, an unreferenced segment.
	os.WriteFile(filepath.Join(dir, ".tmp-commit_x-123"), []byte("half"), 0o644)
	os.WriteFile(filepath.Join(dir, "seg_99999999_orphan"), []byte("orphan"), 0o644)
	os.WriteFile(filepath.Join(dir, "README.operator"), []byte("keep me"), 0o644)
	s.oplog.close()
	s.lock.Close()
	s.closed = true

	s2, err := Open(filepath.Dir(filepath.Dir(filepath.Dir(dir))), ShardID{Index: "idx", Shard: 0}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, gone := range []string{"staging", ".tmp-commit_x-123", "seg_99999999_orphan"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived open", gone)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "README.operator")); err != nil {
		t.Error("open deleted a file it does not own")
	}
	if digest(t, s2) != want {
		t.Fatal("content changed")
	}
}

func TestTornOplogTailIsTruncated(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	mustIndex(t, s, 20, 0)
	dir := s.Path()
	base := filepath.Dir(filepath.Dir(filepath.Dir(dir)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, oplogDir, "*", "*.log"))
	last := logs[len(logs)-1]
	fi, _ := os.Stat(last)
	// Cut the last record in half and add garbage: a torn write.
	if err := os.Truncate(last, fi.Size()-5); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0xde, 0xad})
	f.Close()
	s2, err := Open(base, ShardID{Index: "idx", Shard: 0}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if st := s2.Stats(); st.Seq.LocalCheckpoint != 18 {
		t.Fatalf("checkpoint after torn tail = %v, want 18", st.Seq.LocalCheckpoint)
	}
	if _, err := s2.Index(ctx, "after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s2.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptCommitFallsBackToOlderValidOne(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	mustIndex(t, s, 10, 0)
	dir := s.Path()
	base := filepath.Dir(filepath.Dir(filepath.Dir(dir)))
	gen := s.Metadata().Generation
	s.Close()
	// A newer commit file that does not verify (bit rot, not a crash: the
	// rename is atomic) must not be loaded.
	os.WriteFile(filepath.Join(dir, commitName(gen+1)), []byte("RCMT garbage"), 0o644)
	s2, err := Open(base, ShardID{Index: "idx", Shard: 0}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Metadata().Generation != gen {
		t.Fatalf("loaded generation %d, want %d", s2.Metadata().Generation, gen)
	}
	if err := s2.Flush(); err != nil { // must not overwrite the damaged name
		t.Fatal(err)
	}
	if g := s2.Metadata().Generation; g <= gen+1 {
		t.Fatalf("new commit reused generation %d", g)
	}
	s2.Close()
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	openNew(t, dir, Options{})
	if _, err := Open(dir, ShardID{Index: "idx", Shard: 0}, Options{}); err == nil {
		t.Fatal("a shard was opened twice")
	}
	if _, err := Open(dir, ShardID{Index: "other", Shard: 0}, Options{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown shard: %v", err)
	}
}
