package shardstore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/recoverd/recoverd/seqno"
)

// crash drops a shard as a killed process does: no Close, nothing cleaned.
func crash(s *Shard) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oplog.close()
	s.lock.Close()
	s.closed = true
}

// After a crash, a staging kept at open (KeepStaging) is handed back to
// its recovery with what was written into it, and publishes; without
// KeepStaging, Open removes it. Suspend keeps it too, and the staged ops
// can be discarded without touching the files (a re-plan fetches its own).
func TestStagingSurvivesARestart(t *testing.T) {
	src := openNew(t, t.TempDir(), Options{RetainOps: 1000})
	mustIndex(t, src, 300, 0)
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	mustIndex(t, src, 20, 300)
	var ops []Op
	if err := src.ReadOps(seqno.Range{From: 300, To: 319}, func(op Op) error { ops = append(ops, op); return nil }); err != nil {
		t.Fatal(err)
	}
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
	files := copyShardFiles(t, src, st)
	if err := st.AppendOps(ops[:10]); err != nil {
		t.Fatal(err)
	}
	crash(dst)

	dst, err = Open(base, id, Options{Create: true, Uncommitted: true, KeepStaging: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err = dst.StartStaging("rec")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if fi, err := os.Stat(filepath.Join(st.Dir(), f.Name)); err != nil || fi.Size() != f.Length {
			t.Fatalf("staged %s after the restart: %v", f.Name, err)
		}
	}
	if err := st.Suspend(); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	dst, err = Open(base, id, Options{Create: true, Uncommitted: true, KeepStaging: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err = dst.StartStaging("rec")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DiscardOps(); err != nil {
		t.Fatal(err)
	}
	if st.StagedOps() != 0 {
		t.Fatalf("staged ops after DiscardOps: %d", st.StagedOps())
	}
	if err := st.AppendOps(ops); err != nil {
		t.Fatal(err)
	}
	if err := st.Publish(files, src.Metadata().Commit); err != nil {
		t.Fatal(err)
	}
	if digest(t, dst) != digest(t, src) || dst.Stats().Seq.MaxSeqNo != 319 {
		t.Fatalf("the resumed copy differs from its source: %v", dst.Stats().Seq)
	}

	// Without KeepStaging, Open removes what a crashed recovery staged.
	if _, err := dst.StartStaging("rec-lost"); err != nil {
		t.Fatal(err)
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
