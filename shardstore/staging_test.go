package shardstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recoverd/recoverd/seqno"
)

// copyShardFiles stages every file of src's commit into dst, as a recovery
// does (written into the staging directory, as recoverd writes it), and
// returns what Publish needs.
func copyShardFiles(t testing.TB, src *Shard, st *Staging) []FileMeta {
	t.Helper()
	return writeShardFiles(t, src, st).Files
}

func TestStagingPublish(t *testing.T) {
	src := openNew(t, t.TempDir(), Options{RetainOps: 1000})
	mustIndex(t, src, 300, 0)
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	mustIndex(t, src, 50, 300) // above the commit: replayed as ops
	dst := openNew(t, t.TempDir(), Options{})
	mustIndex(t, dst, 20, 5000) // old content, other history
	oldDigest := digest(t, dst)

	st, err := dst.StartStaging("rec-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.StartStaging("rec-1"); !errors.Is(err, ErrStagingExists) {
		t.Fatalf("second staging with same id: %v", err)
	}
	files := copyShardFiles(t, src, st)
	if digest(t, dst) != oldDigest {
		t.Fatal("staged files became visible before publish")
	}
	srcMeta := src.Metadata()
	var ops []Op
	if err := src.ReadOps(seqno.Range{From: srcMeta.Commit.LocalCheckpoint + 1, To: src.Stats().Seq.MaxSeqNo}, func(op Op) error {
		ops = append(ops, op)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Half the ops are staged and published with the files, the rest are
	// applied after (as ops that reach the source during the recovery).
	if err := st.AppendOps(ops[:25]); err != nil {
		t.Fatal(err)
	}
	if digest(t, dst) != oldDigest {
		t.Fatal("staged ops became visible before publish")
	}
	if err := st.Publish(files, srcMeta.Commit); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(st.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("staging dir left after publish")
	}
	if cp := dst.Stats().Seq.LocalCheckpoint; cp != 324 {
		t.Fatalf("checkpoint after publish with staged ops = %v, want 324", cp)
	}
	if err := dst.Apply(ctx, ops[25:]); err != nil {
		t.Fatal(err)
	}
	if digest(t, dst) != digest(t, src) {
		t.Fatal("recovered copy differs from the source")
	}
	if dst.Stats().HistoryUUID != src.Stats().HistoryUUID || dst.Stats().Seq.LocalCheckpoint != 349 {
		t.Fatalf("recovered stats %+v", dst.Stats())
	}
	dst = reopen(t, dst, Options{})
	if digest(t, dst) != digest(t, src) {
		t.Fatal("recovered copy differs after reopen")
	}
}

func TestStagingRejectsBadFiles(t *testing.T) {
	src := openNew(t, t.TempDir(), Options{})
	mustIndex(t, src, 30, 0)
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	dst := openNew(t, t.TempDir(), Options{})
	before := digest(t, dst)
	st, err := dst.StartStaging("rec-2")
	if err != nil {
		t.Fatal(err)
	}
	fm := src.Metadata().Files[0]
	data, err := os.ReadFile(filepath.Join(src.Path(), fm.Name))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff // the footer's checksum
	if err := os.WriteFile(filepath.Join(st.Dir(), fm.Name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.Publish([]FileMeta{fm}, src.Metadata().Commit); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fm.Name) {
		t.Fatalf("publish of corrupt file: %v", err)
	}
	if err := st.Publish([]FileMeta{{Name: "../evil", Length: 10}}, src.Metadata().Commit); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("path in staged name: %v", err)
	}
	if err := st.Publish([]FileMeta{{Name: "seg_missing", Length: 8, CRC32C: 1}}, src.Metadata().Commit); err == nil {
		t.Fatal("publish of a file neither staged nor present accepted")
	}
	if err := st.Abandon(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(st.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("abandoned staging left on disk")
	}
	if digest(t, dst) != before {
		t.Fatal("failed publish changed the shard")
	}
}
