package shardstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// stagedSet is a source shard of three files of a few MiB.
func stagedSet(t *testing.T) (*Shard, []FileMeta, map[string][]byte) {
	t.Helper()
	src := openNew(t, t.TempDir(), Options{})
	v := make([]byte, 4096)
	for seg := 0; seg < 3; seg++ {
		docs := make([]Doc, 700)
		for i := range docs {
			for j := range v {
				v[j] = byte(seg*7 + i*13 + j*31)
			}
			docs[i] = Doc{Key: fmt.Sprintf("k-%d-%04d", seg, i), Value: append([]byte(nil), v...)}
		}
		if _, err := src.IndexBatch(context.Background(), docs); err != nil {
			t.Fatal(err)
		}
		if err := src.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	files := src.Metadata().Files
	data := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src.Path(), f.Name))
		if err != nil {
			t.Fatal(err)
		}
		data[f.Name] = b
	}
	return src, files, data
}

// stage writes the first n bytes of a file in order, in 256 KiB chunks
// each marked checked, as a peer transfer does.
func stage(t *testing.T, st *Staging, f FileMeta, data []byte, n int64) {
	t.Helper()
	sf, err := st.CreateFile(f)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	for off := sf.Good(); off < n; off += 256 << 10 {
		end := min(off+256<<10, n)
		if _, err := sf.WriteAt(data[off:end], off); err != nil {
			t.Fatal(err)
		}
		sf.MarkGood(end)
	}
	if n == f.Length {
		if err := sf.Verify(); err != nil {
			t.Fatal(err)
		}
	}
}

// crash drops a shard as a killed process does: no Close, nothing cleaned.
func crash(s *Shard) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oplog.close()
	s.lock.Close()
	s.closed = true
}

// After a crash, a staging kept at open resumes: the complete file that
// reads back whole counts as staged and verified, the partial one keeps
// the prefix its progress record names (not the bytes written after it),
// a file whose recorded prefix was damaged starts over, and the set
// publishes equal to its source.
func TestStagingResumesAfterARestart(t *testing.T) {
	src, files, data := stagedSet(t)
	whole, partial, damaged := files[0], files[1], files[2]
	base := t.TempDir()
	id := ShardID{Index: "idx", Shard: 0}
	dst, err := Open(base, id, Options{Create: true, Uncommitted: true, KeepStaging: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := dst.StartStaging("rec")
	if err != nil {
		t.Fatal(err)
	}
	stage(t, st, whole, data[whole.Name], whole.Length)
	stage(t, st, partial, data[partial.Name], 2<<20+512<<10) // recorded at 2 MiB
	stage(t, st, damaged, data[damaged.Name], 2<<20)
	crash(dst)
	// Bytes the crash left past the recorded prefix, and a byte of the
	// other file's recorded prefix changed (what a power loss can do).
	f, err := os.OpenFile(filepath.Join(st.Dir(), damaged.Name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[damaged.Name][1000] ^ 0xff}, 1000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.WriteFile(filepath.Join(st.Dir(), "seg_not_in_the_plan"), []byte("left"), 0o644)

	dst, err = Open(base, id, Options{Create: true, Uncommitted: true, KeepStaging: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	st, err = dst.StartStaging("rec")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Files()) != 0 || st.Verified(whole) {
		t.Fatal("files of the earlier process count before Keep checked them")
	}
	kept, keptBytes, err := st.Keep(files)
	if err != nil {
		t.Fatal(err)
	}
	if want := whole.Length + 2<<20; kept != 2 || keptBytes != want {
		t.Fatalf("Keep kept %d files, %d bytes; want 2 files, %d bytes (the whole file and the recorded prefix)", kept, keptBytes, want)
	}
	if !st.Verified(whole) {
		t.Fatal("the complete file is not verified after Keep")
	}
	if _, err := os.Stat(filepath.Join(st.Dir(), "seg_not_in_the_plan")); !os.IsNotExist(err) {
		t.Fatalf("a staged file the plan does not list survived Keep: %v", err)
	}
	for _, c := range []struct {
		f    FileMeta
		good int64
	}{{whole, whole.Length}, {partial, 2 << 20}, {damaged, 0}} {
		sf, err := st.CreateFile(c.f)
		if err != nil {
			t.Fatal(err)
		}
		size, _ := sf.Size()
		if c.f != whole && (sf.Good() != c.good || size != c.good) {
			t.Fatalf("%s: resumes at %d with %d bytes present, want %d", c.f.Name, sf.Good(), size, c.good)
		}
		sf.Close()
		stage(t, st, c.f, data[c.f.Name], c.f.Length)
	}
	if err := st.Publish(files, src.Metadata().Commit); err != nil {
		t.Fatal(err)
	}
	if digest(t, dst) != digest(t, src) {
		t.Fatal("the resumed copy differs from its source")
	}
}

// Without KeepStaging, Open removes what a crashed recovery staged, as
// before; Suspend keeps it, with the exact prefix of a partial file.
func TestStagingSuspendRecordsPartialFiles(t *testing.T) {
	_, files, data := stagedSet(t)
	f := files[0]
	base := t.TempDir()
	id := ShardID{Index: "idx", Shard: 0}
	dst, err := Open(base, id, Options{Create: true, KeepStaging: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := dst.StartStaging("rec")
	if err != nil {
		t.Fatal(err)
	}
	stage(t, st, f, data[f.Name], 768<<10) // below progressEvery: no record yet
	if err := st.Suspend(); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	dst, err = Open(base, id, Options{KeepStaging: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err = dst.StartStaging("rec")
	if err != nil {
		t.Fatal(err)
	}
	if _, n, err := st.Keep(files); err != nil || n != 768<<10 {
		t.Fatalf("Keep after Suspend: %d bytes, %v; want the %d bytes staged", n, err, 768<<10)
	}
	crash(dst)
	dst, err = Open(base, id, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := os.Stat(filepath.Join(dst.Path(), stagingDir)); !os.IsNotExist(err) {
		t.Fatalf("Open without KeepStaging kept the staging: %v", err)
	}
}
