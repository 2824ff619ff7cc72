package shardstore

import (
	"errors"
	"testing"

	"github.com/recoverd/recoverd/seqno"
)

func seqs(from, to seqno.SeqNo) []seqno.SeqNo {
	var out []seqno.SeqNo
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// TestApplyRefusesNewerTermOverStaleOps: a replica that kept an old
// primary's ops above its global checkpoint takes no op of the new term
// (not one for a seqno it holds, not one past its max): it is left as it
// was, its term unchanged and its commit saying which term its ops above
// the global checkpoint are of.
func TestApplyRefusesNewerTermOverStaleOps(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	if err := s.Apply(ctx, termOps(1, seqs(0, 9)...)); err != nil {
		t.Fatal(err)
	}
	s.SetGlobalCheckpoint(5)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	before := digest(t, s)
	for _, batch := range [][]Op{termOps(2, 8), termOps(2, 10, 11), append(termOps(1, 12), termOps(2, 13)...)} {
		err := s.Apply(ctx, batch)
		if !errors.Is(err, ErrStaleTerm) {
			t.Fatalf("ops of term 2 over term-1 ops above the global checkpoint: err %v, want ErrStaleTerm", err)
		}
	}
	if got := s.Stats(); got.PrimaryTerm != 1 || got.Seq.MaxSeqNo != 9 || digest(t, s) != before {
		t.Fatalf("a refused batch changed the copy: term %d, %v", got.PrimaryTerm, got.Seq)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if c := s.Metadata().Commit; c.PrimaryTerm != 1 || c.MaxTermAboveGlobalCheckpoint != 1 || c.GlobalCheckpoint != 5 {
		t.Fatalf("commit %+v, want term 1 and term-1 ops above global checkpoint 5", c)
	}
	// Ops of its own term still come (the old primary's, if it lives on).
	if err := s.Apply(ctx, termOps(1, 10)); err != nil {
		t.Fatal(err)
	}
}

// TestOpTermsRecordedNotAdopted: a replica with nothing above its global
// checkpoint takes the new primary's ops (a batch may mix the terms it
// resends); the ops keep their terms, the copy keeps its own, and the
// commit states the highest term above its global checkpoint, across a
// reopen and as the global checkpoint moves. Promote goes past every term
// the copy has seen.
func TestOpTermsRecordedNotAdopted(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	if err := s.Apply(ctx, termOps(1, seqs(0, 9)...)); err != nil {
		t.Fatal(err)
	}
	s.SetGlobalCheckpoint(9)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if c := s.Metadata().Commit; c.MaxTermAboveGlobalCheckpoint != 0 {
		t.Fatalf("nothing above the global checkpoint, commit says term %d", c.MaxTermAboveGlobalCheckpoint)
	}
	if err := s.Apply(ctx, append(termOps(2, 12, 13), termOps(1, 10, 11)...)); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, termOps(2, 14)); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().PrimaryTerm; got != 1 {
		t.Fatalf("the copy's term became %d from the ops it received", got)
	}
	var terms []uint64
	if err := s.ReadOps(seqno.Range{From: 10, To: 14}, func(op Op) error { terms = append(terms, op.PrimaryTerm); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(terms) != 5 || terms[0] != 1 || terms[1] != 1 || terms[2] != 2 || terms[4] != 2 {
		t.Fatalf("op terms %v, want [1 1 2 2 2]", terms)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if c := s.Metadata().Commit; c.PrimaryTerm != 1 || c.MaxTermAboveGlobalCheckpoint != 2 {
		t.Fatalf("commit %+v, want own term 1 and term 2 above the global checkpoint", c)
	}
	s = reopen(t, s, Options{})
	s.SetGlobalCheckpoint(12)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if c := s.Metadata().Commit; c.MaxTermAboveGlobalCheckpoint != 2 {
		t.Fatalf("after reopen, ops 13..14 of term 2 above the global checkpoint 12: commit says %d", c.MaxTermAboveGlobalCheckpoint)
	}
	s.SetGlobalCheckpoint(14)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if c := s.Metadata().Commit; c.MaxTermAboveGlobalCheckpoint != 0 {
		t.Fatalf("nothing above the global checkpoint 14, commit says term %d", c.MaxTermAboveGlobalCheckpoint)
	}
	if err := s.Promote(); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().PrimaryTerm; got != 3 {
		t.Fatalf("promoted to term %d after seeing ops of term 2, want 3", got)
	}
	op, err := s.Index(ctx, "new", []byte("v"))
	if err != nil || op.PrimaryTerm != 3 {
		t.Fatalf("write after promotion: %+v %v", op, err)
	}
}
