package shardstore

import (
	"errors"
	"strings"
	"testing"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

func TestRefuseWritesDuringARecovery(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	mustIndex(t, s, 5, 0)
	s.RefuseWrites("rec-1")
	s.RefuseWrites("rec-2")
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrWritesRefused) || !strings.Contains(err.Error(), "rec-1, rec-2") {
			t.Fatalf("%s while recoveries refuse writes: %v, want ErrWritesRefused naming them", what, err)
		}
	}
	_, err := s.Index(ctx, "k", []byte("v"))
	refused("index", err)
	_, err = s.Delete(ctx, "doc-000001")
	refused("delete", err)
	refused("merge", s.Merge())
	refused("promote", s.Promote())
	// Replicated ops and flushes go on.
	if err := s.Apply(ctx, []Op{{Key: "r", SeqNo: 5, PrimaryTerm: 1, Value: []byte("x")}}); err != nil {
		t.Fatalf("apply while writes are refused: %v", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("flush while writes are refused: %v", err)
	}
	s.ResumeWrites("rec-1")
	s.ResumeWrites("unknown")
	_, err = s.Index(ctx, "k", []byte("v"))
	if !errors.Is(err, ErrWritesRefused) || strings.Contains(err.Error(), "rec-1") {
		t.Fatalf("index with rec-2 still refusing: %v", err)
	}
	s.ResumeWrites("rec-2")
	mustIndex(t, s, 1, 10)
	if err := s.Merge(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Seq.MaxSeqNo != 6 || st.Seq.LocalCheckpoint != 6 {
		t.Fatalf("seqnos after the refusal: %v", st.Seq)
	}
}

func TestReadOpsOfChecksHistoryAndRange(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{RetainOps: 100})
	mustIndex(t, s, 10, 0)
	history := s.Stats().HistoryUUID
	var got []seqno.SeqNo
	if err := s.ReadOpsOf(history, seqno.Range{From: 2, To: 4}, func(op Op) error { got = append(got, op.SeqNo); return nil }); err != nil || len(got) != 3 {
		t.Fatalf("ReadOpsOf = %v, %v", got, err)
	}
	for _, c := range []struct {
		history string
		r       seqno.Range
		want    error
	}{
		{"other", seqno.Range{From: 0, To: 1}, engine.ErrHistoryMismatch},
		{"", seqno.Range{From: 0, To: 1}, engine.ErrInvalidArgument},
		{history, seqno.Range{From: -1, To: 1}, engine.ErrInvalidArgument},
		{history, seqno.Range{From: 5, To: 2}, engine.ErrInvalidArgument},
		{history, seqno.Range{From: 5, To: 10}, engine.ErrOutOfRange},
	} {
		err := s.ReadOpsOf(c.history, c.r, func(Op) error { t.Fatal("an op was read"); return nil })
		if !errors.Is(err, c.want) {
			t.Errorf("ReadOpsOf(%q, %v) = %v, want %v", c.history, c.r, err, c.want)
		}
	}
}
