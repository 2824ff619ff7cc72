package shardstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/recoverd/recoverd/engine"
)

// writeShardFiles writes every file of src's commit straight into the
// staging directory, as recoverd does through the engine contract, and
// returns the commit.
func writeShardFiles(t testing.TB, src *Shard, st *Staging) Metadata {
	t.Helper()
	ref, err := src.AcquireCommit()
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Release()
	for _, fm := range ref.Metadata().Files {
		path, _, err := ref.Path(fm.Name)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(st.Dir(), fm.Name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ref.Metadata()
}

func TestPublishFilesWrittenIntoTheStagingDirectory(t *testing.T) {
	src := openNew(t, t.TempDir(), Options{})
	mustIndex(t, src, 200, 0)
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	mustIndex(t, src, 100, 200)
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	dst := openNew(t, t.TempDir(), Options{})
	mustIndex(t, dst, 10, 9000)
	if err := dst.Flush(); err != nil {
		t.Fatal(err)
	}
	before, oldDigest := dst.Metadata(), digest(t, dst)
	st, err := dst.StartStaging("rec-written")
	if err != nil {
		t.Fatal(err)
	}
	md := writeShardFiles(t, src, st)
	if len(md.Files) < 2 {
		t.Fatalf("source has %d files", len(md.Files))
	}
	first := md.Files[0]
	path := filepath.Join(st.Dir(), first.Name)
	good, _ := os.ReadFile(path)

	refused := func(what string, files []FileMeta, want error) {
		t.Helper()
		if err := st.Publish(files, md.Commit); !errors.Is(err, want) {
			t.Fatalf("publish with %s: %v, want %v", what, err, want)
		}
		if got := dst.Metadata(); got.Generation != before.Generation || digest(t, dst) != oldDigest {
			t.Fatalf("publish with %s changed the shard", what)
		}
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 0xff // the footer's checksum
	os.WriteFile(path, bad, 0o644)
	refused("a footer that does not match", md.Files, ErrCorrupt)
	os.WriteFile(path, good[:len(good)-1], 0o644)
	refused("a short file", md.Files, ErrCorrupt)
	os.WriteFile(path, good, 0o644)
	other := append([]FileMeta(nil), md.Files...)
	other[0].WriterUUID = "00000000000000000000000000000000"
	refused("another writer's file", other, ErrCorrupt)
	refused("a file not staged", append(append([]FileMeta(nil), md.Files...), FileMeta{Name: "seg_missing", Length: 60, CRC32C: 1}), engine.ErrInvalidArgument)
	refused("a name with a path", append(append([]FileMeta(nil), md.Files...), FileMeta{Name: "../commit_1", Length: 60, CRC32C: 1}), engine.ErrInvalidName)
	// A staged file under the name of a different file of the current commit.
	clash := before.Files[0]
	data, _ := os.ReadFile(filepath.Join(dst.Path(), clash.Name))
	srcData, _ := os.ReadFile(path)
	os.WriteFile(filepath.Join(st.Dir(), clash.Name), srcData, 0o644)
	clashing := append([]FileMeta(nil), md.Files...)
	clashing[0].Name = clash.Name
	refused("a staged file replacing another", clashing, ErrConflict)
	os.Remove(filepath.Join(st.Dir(), clash.Name))
	if b, _ := os.ReadFile(filepath.Join(dst.Path(), clash.Name)); string(b) != string(data) {
		t.Fatal("the current commit's file changed")
	}

	if err := st.Publish(md.Files, md.Commit); err != nil {
		t.Fatal(err)
	}
	if digest(t, dst) != digest(t, src) {
		t.Fatal("published copy differs from its source")
	}
	if _, err := os.Stat(st.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging directory left after publish: %v", err)
	}
	dst = reopen(t, dst, Options{})
	if digest(t, dst) != digest(t, src) {
		t.Fatal("published copy differs from its source after a reopen")
	}
}
