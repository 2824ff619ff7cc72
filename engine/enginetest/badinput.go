package enginetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// badNames are names that must never reach a path.
var badNames = []string{"", ".", "..", "../x", "a/b", `a\b`, "a\x00b", ".hidden", "é", strings.Repeat("n", engine.MaxNameLen+1)}

// testBadInput: every name, id, range and op an engine is handed is
// checked before it touches anything.
func testBadInput(t *testing.T, h Harness) {
	e, _ := fresh(t, h)
	s := source(t, e, sid("src"))
	for _, name := range badNames {
		id := engine.ShardID{Index: name, Shard: 0}
		_, err := e.Shard(ctx, id)
		want(t, "Shard "+name, err, engine.ErrInvalidName)
		_, _, err = e.OpenTarget(ctx, id)
		want(t, "OpenTarget "+name, err, engine.ErrInvalidName)
		want(t, "RemoveUncommitted "+name, e.RemoveUncommitted(ctx, id), engine.ErrInvalidName)
		want(t, "RefuseWrites "+name, e.RefuseWrites(ctx, id, "rec"), engine.ErrInvalidName)
		want(t, "ResumeWrites "+name, e.ResumeWrites(ctx, id, "rec"), engine.ErrInvalidName)
		want(t, "RefuseWrites by recovery "+name, e.RefuseWrites(ctx, sid("src"), name), engine.ErrInvalidName)
		_, err = s.StartStaging(ctx, name)
		want(t, "StartStaging "+name, err, engine.ErrInvalidName)
		_, err = s.AcquireLease(ctx, lease(name, 310, "n1"))
		want(t, "AcquireLease "+name, err, engine.ErrInvalidName)
		_, err = s.RenewLease(ctx, name, "n1", seqno.Unassigned)
		want(t, "RenewLease "+name, err, engine.ErrInvalidName)
		want(t, "ReleaseLease "+name, s.ReleaseLease(ctx, name, "n1"), engine.ErrInvalidName)
	}
	for _, n := range []int{-1, 1<<20 + 1} {
		_, err := e.Shard(ctx, engine.ShardID{Index: "src", Shard: n})
		want(t, "shard number out of range", err, engine.ErrInvalidName)
	}
	if _, err := e.Shards(ctx); err != nil {
		t.Fatalf("Shards after bad input: %v", err)
	}

	long := lease("ok", 310, "n1")
	long.Source = strings.Repeat("s", engine.MaxNameLen+1)
	_, err := s.AcquireLease(ctx, long)
	want(t, "a lease source past the bound", err, engine.ErrInvalidArgument)
	_, err = s.AcquireLease(ctx, lease("ok", -1, "n1"))
	want(t, "a negative retaining seqno", err, engine.ErrInvalidArgument)
	_, err = s.RenewLease(ctx, "ok", "n1", -5)
	want(t, "a renewal to seqno -5", err, engine.ErrInvalidArgument)
	_, err = s.Pin(ctx, engine.PinOptions{TTL: -1})
	want(t, "a negative pin TTL", err, engine.ErrInvalidArgument)

	before := info(t, s)
	for _, c := range []struct {
		what string
		op   engine.Op
	}{
		{"a negative seqno", engine.Op{Key: "k", SeqNo: -1, PrimaryTerm: 1}},
		{"an unknown kind", engine.Op{Key: "k", SeqNo: 400, PrimaryTerm: 1, Kind: 9}},
		{"an index op without a key", engine.Op{SeqNo: 400, PrimaryTerm: 1}},
		{"a no-op with a key", engine.Op{Key: "k", SeqNo: 400, PrimaryTerm: 1, Kind: engine.OpNoOp}},
	} {
		want(t, "Apply of "+c.what, s.Apply(ctx, append(docs(340, 2, 1), c.op)), engine.ErrInvalidArgument)
		st, err := s.StartStaging(ctx, "rec-bad-op")
		if err != nil {
			t.Fatal(err)
		}
		want(t, "AppendOps of "+c.what, st.AppendOps(ctx, []engine.Op{c.op}), engine.ErrInvalidArgument)
		if err := st.Abandon(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if in := info(t, s); in.Seq != before.Seq {
		t.Fatalf("a batch with a bad op changed the copy: %v, was %v", in.Seq, before.Seq)
	}
}

// testClosed: after Close, every call answers ErrClosed (a pin may say it
// is lost instead).
func testClosed(t *testing.T, h Harness) {
	e, _ := fresh(t, h)
	s := source(t, e, sid("src"))
	pin, err := s.Pin(ctx, engine.PinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.StartStaging(ctx, "rec-closed")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	_, err = e.Shard(ctx, sid("src"))
	want(t, "Shard after Close", err, engine.ErrClosed)
	_, err = e.Shards(ctx)
	want(t, "Shards after Close", err, engine.ErrClosed)
	_, _, err = e.OpenTarget(ctx, sid("new"))
	want(t, "OpenTarget after Close", err, engine.ErrClosed)
	_, err = s.Info(ctx)
	want(t, "Info after Close", err, engine.ErrClosed)
	want(t, "Apply after Close", s.Apply(ctx, docs(340, 1, 1)), engine.ErrClosed)
	_, err = s.AcquireLease(ctx, lease("l", 310, "n1"))
	want(t, "AcquireLease after Close", err, engine.ErrClosed)
	want(t, "AppendOps after Close", st.AppendOps(ctx, docs(340, 1, 1)), engine.ErrClosed)
	if _, err := pin.Path(pin.Metadata().Files[0].Name); !errors.Is(err, engine.ErrPinLost) && !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("a pin of a closed engine: %v, want ErrPinLost or ErrClosed", err)
	}
}
