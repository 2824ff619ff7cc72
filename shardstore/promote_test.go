package shardstore

import (
	"fmt"
	"testing"

	"github.com/recoverd/recoverd/seqno"
)

// termOps makes index ops of term at the given seqnos.
func termOps(term uint64, seqs ...seqno.SeqNo) []Op {
	ops := make([]Op, len(seqs))
	for i, s := range seqs {
		ops[i] = Op{Key: fmt.Sprintf("doc-%06d", s), SeqNo: s, PrimaryTerm: term, Value: []byte(fmt.Sprintf("t%d-%d", term, s))}
	}
	return ops
}

// loggedOps counts the op records the op log holds.
func loggedOps(s *Shard) int {
	s.oplog.mu.Lock()
	defer s.oplog.mu.Unlock()
	n := 0
	for _, g := range s.oplog.gens {
		n += len(g.locs)
	}
	return n
}

func checkpointAtMax(t *testing.T, s *Shard, want seqno.SeqNo) {
	t.Helper()
	if st := s.Stats().Seq; st.LocalCheckpoint != want || st.MaxSeqNo != want {
		t.Fatalf("local checkpoint %v, max seqno %v; want both %v", st.LocalCheckpoint, st.MaxSeqNo, want)
	}
}

// TestPromoteFillsSeqNoGaps: a replica promoted with a hole below its max
// seqno fills it with a durable no-op of the new term, so its checkpoint
// reaches the max seqno, its op log is trimmed to what retention asks, and
// an open replays only the ops above the last commit.
func TestPromoteFillsSeqNoGaps(t *testing.T) {
	const retain = 100
	opts := Options{RetainOps: retain}
	s := openNew(t, t.TempDir(), opts)
	if err := s.Apply(ctx, termOps(1, 0, 1, 2, 3, 4, 5, 7)); err != nil {
		t.Fatal(err)
	}
	if err := s.Promote(); err != nil {
		t.Fatal(err)
	}
	checkpointAtMax(t, s, 7)
	if got := s.Stats().PrimaryTerm; got != 2 {
		t.Fatalf("term after promotion %d, want 2", got)
	}
	if got := s.Metadata().Commit; got.LocalCheckpoint != 7 || got.PrimaryTerm != 2 {
		t.Fatalf("the promotion's commit: %+v", got)
	}
	var filled []Op
	if err := s.ReadOps(seqno.Range{From: 6, To: 6}, func(op Op) error { filled = append(filled, op); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(filled) != 1 || filled[0].Kind != OpNoOp || filled[0].PrimaryTerm != 2 || filled[0].Key != "" {
		t.Fatalf("seqno 6 holds %+v, want one no-op of term 2", filled)
	}
	before := digest(t, s)
	if _, found, _, _ := getDoc(s, ""); found {
		t.Fatal("the no-op made a document")
	}

	if _, err := s.Leases().Add("peer", 500, "n3"); err != nil { // a peer that needs ops from 500 on
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		mustIndex(t, s, 100, 1000+100*i)
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	checkpointAtMax(t, s, 2007)
	if got := s.RetainedOps().From; got != 500 {
		t.Fatalf("op log retained from %v with a lease from 500", got)
	}
	if n := loggedOps(s); n > 2007-500+1+100 {
		t.Fatalf("op log holds %d ops; the lease asks for %d", n, 2007-500+1)
	}
	if err := s.Leases().Remove("peer"); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := s.RetainedOps().From; got != 2008-retain {
		t.Fatalf("op log retained from %v, RetainOps asks from %v", got, 2008-retain)
	}
	if n := loggedOps(s); n > retain+100 {
		t.Fatalf("op log holds %d ops; RetainOps asks for %d", n, retain)
	}

	mustIndex(t, s, 50, 5000) // not flushed: the op log holds them
	want := digest(t, s)
	if want == before {
		t.Fatal("the writes changed nothing")
	}
	s = reopen(t, s, opts)
	if s.replayed != 50 {
		t.Fatalf("the open replayed %d ops, want the 50 above the last commit", s.replayed)
	}
	checkpointAtMax(t, s, 2057)
	if got := digest(t, s); got != want {
		t.Fatal("content changed across the reopen")
	}
}

func getDoc(s *Shard, key string) ([]byte, bool, seqno.SeqNo, error) {
	v, seq, found, err := s.Get(key)
	return v, found, seq, err
}

// TestNoOpsReplicateAndReplay: the no-ops of a promotion go through the op
// stream to another copy (Apply) and to a recovery (staged ops published
// and replayed at open), change no document and never enter a segment.
func TestNoOpsReplicateAndReplay(t *testing.T) {
	primary := openNew(t, t.TempDir(), Options{RetainOps: 100})
	if err := primary.Apply(ctx, termOps(1, 0, 1, 3, 6)); err != nil {
		t.Fatal(err)
	}
	if err := primary.Promote(); err != nil {
		t.Fatal(err)
	}
	checkpointAtMax(t, primary, 6)
	mustIndex(t, primary, 5, 0)
	var ops []Op
	if err := primary.ReadOps(seqno.Range{From: 0, To: 11}, func(op Op) error { ops = append(ops, op); return nil }); err != nil {
		t.Fatal(err)
	}
	var noops int
	for _, op := range ops {
		if op.Kind == OpNoOp {
			noops++
		}
	}
	if len(ops) != 12 || noops != 3 {
		t.Fatalf("read %d ops with %d no-ops, want 12 with 3", len(ops), noops)
	}

	replica := openNew(t, t.TempDir(), Options{})
	if err := replica.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	checkpointAtMax(t, replica, 11)
	if err := replica.Merge(); err != nil {
		t.Fatal(err)
	}
	if digest(t, replica) != digest(t, primary) {
		t.Fatal("the replica differs from the primary")
	}

	target := openNew(t, t.TempDir(), Options{})
	st, err := target.StartStaging("r1")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AppendOps(ops); err != nil {
		t.Fatal(err)
	}
	data := primary.Metadata().Commit
	data.MaxSeqNo, data.LocalCheckpoint, data.GlobalCheckpoint = -1, -1, -1
	if err := st.Publish(nil, data); err != nil {
		t.Fatal(err)
	}
	checkpointAtMax(t, target, 11)
	if err := target.Flush(); err != nil {
		t.Fatal(err)
	}
	target = reopen(t, target, Options{})
	checkpointAtMax(t, target, 11)
	if digest(t, target) != digest(t, primary) {
		t.Fatal("the recovered copy differs from the primary")
	}
	if err := replica.Apply(ctx, []Op{{Key: "k", SeqNo: 20, PrimaryTerm: 2, Kind: OpNoOp}}); err == nil {
		t.Fatal("a no-op with a key was applied")
	}
}
