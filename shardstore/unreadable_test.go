package shardstore

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Unreadable is not corrupt: only a checksum or format failure is
// ErrCorrupt (a shard proven damaged, which a node may move aside). A file
// that cannot be read (EIO, EMFILE, EACCES; here EISDIR, a directory in
// place of the file, since permissions do not stop root) is ErrUnavailable:
// the shard stays where it is and opens once the file reads again.

// flushedShard returns a closed shard with docs in one segment.
func flushedShard(t *testing.T) (base string, id ShardID, dir, want string) {
	t.Helper()
	base, id = t.TempDir(), ShardID{Index: "idx", Shard: 0}
	s, err := Open(base, id, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	mustIndex(t, s, 200, 0)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	want = digest(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return base, id, s.Path(), want
}

// unreadable puts a directory where path was and returns the function
// that puts the file back.
func unreadable(t *testing.T, path string) (restore func()) {
	t.Helper()
	aside := filepath.Join(t.TempDir(), filepath.Base(path)) // out of the shard: open would delete it
	if err := os.Rename(path, aside); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(aside, path); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnreadableCommitIsUnavailableNotCorrupt(t *testing.T) {
	base, id, dir, want := flushedShard(t)
	gens, _ := commitGens(dir)
	restore := unreadable(t, filepath.Join(dir, commitName(gens[0])))

	_, err := Open(base, id, Options{})
	if err == nil {
		t.Fatal("a shard whose commit cannot be read opened")
	}
	if errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("open = %v: a read error must be ErrUnavailable, not ErrCorrupt", err)
	}
	if _, err := ReadMetadata(base, id); errors.Is(err, ErrCorrupt) || err == nil {
		t.Fatalf("ReadMetadata = %v: a read error is not corruption", err)
	}
	if ids, err := List(base); err != nil || !slices.Contains(ids, id) {
		t.Fatalf("List = %v, %v: a shard that cannot be read now is still listed", ids, err)
	}

	restore()
	s, err := Open(base, id, Options{})
	if err != nil {
		t.Fatalf("the shard does not open once its commit reads again: %v", err)
	}
	defer s.Close()
	if digest(t, s) != want {
		t.Fatal("content changed")
	}
}

func TestUnreadableSegmentIsNotCorrupt(t *testing.T) {
	base, id, _, want := flushedShard(t)
	s, err := Open(base, id, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seg := filepath.Join(s.Path(), s.Metadata().Files[0].Name)
	restore := unreadable(t, seg)
	if _, err := s.Digest(ctx); err == nil || errors.Is(err, ErrCorrupt) {
		t.Errorf("Digest over an unreadable segment = %v, want a read error that is not ErrCorrupt", err)
	}
	if _, _, _, err := s.Get("doc-000007"); err == nil || errors.Is(err, ErrCorrupt) {
		t.Errorf("Get from an unreadable segment = %v, want a read error that is not ErrCorrupt", err)
	}
	restore()
	if digest(t, s) != want {
		t.Fatal("content changed")
	}
}

func TestDamagedCommitIsStillCorrupt(t *testing.T) {
	base, id, dir, _ := flushedShard(t)
	gens, _ := commitGens(dir)
	path := filepath.Join(dir, commitName(gens[0]))
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 0xff
	os.WriteFile(path, b, 0o644)
	if _, err := Open(base, id, Options{}); !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("open = %v, want ErrCorrupt", err)
	}
}
