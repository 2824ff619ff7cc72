package shardstore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/recoverd/recoverd/seqno"
)

// A file staged partly by one attempt of a recovery keeps its checked
// prefix for the next attempt of the same recovery (a re-plan), and the
// ops of the first attempt can be discarded without touching the files.
func TestStagingKeepsCheckedPrefixAcrossAttempts(t *testing.T) {
	src := openNew(t, t.TempDir(), Options{RetainOps: 1000})
	mustIndex(t, src, 300, 0)
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	mustIndex(t, src, 20, 300)
	fm := src.Metadata().Files[0]
	data, err := os.ReadFile(filepath.Join(src.Path(), fm.Name))
	if err != nil {
		t.Fatal(err)
	}
	dst := openNew(t, t.TempDir(), Options{})
	st, err := dst.StartStaging("rec-resume")
	if err != nil {
		t.Fatal(err)
	}
	sf, err := st.CreateFile(fm)
	if err != nil {
		t.Fatal(err)
	}
	half := int64(len(data) / 2)
	if _, err := sf.WriteAt(data[:half], 0); err != nil {
		t.Fatal(err)
	}
	if sf.Good() != 0 {
		t.Fatal("bytes written count as checked before MarkGood")
	}
	sf.MarkGood(half)
	// Bytes past the checked prefix (a chunk that failed its check) are
	// written too; they must not count.
	if _, err := sf.WriteAt([]byte("garbage"), half); err != nil {
		t.Fatal(err)
	}
	sf.Close()
	var ops []Op
	if err := src.ReadOps(seqno.Range{From: 300, To: 319}, func(op Op) error { ops = append(ops, op); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendOps(ops[:10]); err != nil {
		t.Fatal(err)
	}

	// The next attempt.
	if err := st.DiscardOps(); err != nil {
		t.Fatal(err)
	}
	if st.StagedOps() != 0 {
		t.Fatalf("staged ops after DiscardOps: %d", st.StagedOps())
	}
	sf, err = st.CreateFile(fm)
	if err != nil {
		t.Fatal(err)
	}
	if got := sf.Good(); got != half {
		t.Fatalf("checked prefix %d after a new attempt, want %d", got, half)
	}
	if _, err := sf.WriteAt(data[half:], half); err != nil {
		t.Fatal(err)
	}
	sf.MarkGood(int64(len(data)))
	if err := sf.Verify(); err != nil {
		t.Fatal(err)
	}
	sf.Close()
	if err := st.AppendOps(ops); err != nil {
		t.Fatal(err)
	}
	commit := src.Metadata().Commit
	if err := st.Publish([]FileMeta{fm}, commit); err != nil {
		t.Fatal(err)
	}
	if err := dst.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := dst.Stats().Seq.MaxSeqNo, seqno.SeqNo(319); got != want {
		t.Fatalf("max seqno after publish %v, want %v (the discarded ops must not be replayed twice or lost)", got, want)
	}

	// Truncate shrinks the checked prefix; a staging file created anew
	// starts from nothing.
	st2, err := dst.StartStaging("rec-other")
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Abandon()
	sf2, err := st2.CreateFile(fm)
	if err != nil {
		t.Fatal(err)
	}
	defer sf2.Close()
	if _, err := sf2.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	sf2.MarkGood(int64(len(data)))
	if err := sf2.Truncate(10); err != nil {
		t.Fatal(err)
	}
	if got := sf2.Good(); got != 10 {
		t.Fatalf("checked prefix after Truncate(10): %d", got)
	}
}
