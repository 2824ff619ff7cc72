package enginetest

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// testInfo: a copy's metadata, commit and live seqnos.
func testInfo(t *testing.T, h Harness) {
	e, _ := fresh(t, h)
	s := source(t, e, sid("src"))
	in := info(t, s)
	c := in.Meta.Commit
	switch {
	case in.ID != sid("src") || !in.Committed:
		t.Fatalf("info names %v, committed %v", in.ID, in.Committed)
	case c.MaxSeqNo != 299 || c.LocalCheckpoint != 299 || c.HistoryUUID == "" || c.PrimaryTerm != 1:
		t.Fatalf("the commit holds %+v, want seqnos up to 299 of term 1", c)
	case c.WriterVersion != e.Version().Writer || c.FormatVersion > e.Version().MaxFormat:
		t.Fatalf("commit versions %q/%d, engine %+v", c.WriterVersion, c.FormatVersion, e.Version())
	case in.Seq.MaxSeqNo != 339 || in.Seq.LocalCheckpoint != 339:
		t.Fatalf("live seqnos %v, want 339 (ops applied since the commit count)", in.Seq)
	case !in.Retained.Contains(300) || !in.Retained.Contains(339):
		t.Fatalf("retained %v does not hold the ops above the commit", in.Retained)
	case len(in.Meta.Files) == 0 || in.Meta.Generation == 0:
		t.Fatalf("a flushed copy has no file: %+v", in.Meta)
	}
	if !slices.IsSortedFunc(in.Meta.Files, func(a, b engine.FileMeta) int { return cmpString(a.Name, b.Name) }) {
		t.Fatal("files are not sorted by name")
	}
	pin, err := s.Pin(ctx, engine.PinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Release(ctx)
	for _, f := range in.Meta.Files {
		path, err := pin.Path(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		checkFile(t, path, f)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkFile checks that the file at path has f's length and CRC32C (of
// every byte but the last four, which hold it).
func checkFile(t testing.TB, path string, f engine.FileMeta) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", f.Name, err)
	}
	if int64(len(b)) != f.Length || len(b) < 4 {
		t.Fatalf("%s is %d bytes, its metadata says %d", f.Name, len(b), f.Length)
	}
	sum := crc32.Checksum(b[:len(b)-4], crc32.MakeTable(crc32.Castagnoli))
	footer := uint32(b[len(b)-4]) | uint32(b[len(b)-3])<<8 | uint32(b[len(b)-2])<<16 | uint32(b[len(b)-1])<<24
	if sum != f.CRC32C || footer != f.CRC32C {
		t.Fatalf("%s has CRC32C %08x and stores %08x, its metadata says %08x", f.Name, sum, footer, f.CRC32C)
	}
}

// testPins: a pinned commit's files stay readable at their paths however
// the copy changes, until the pin is released.
func testPins(t *testing.T, h Harness) {
	e, _ := fresh(t, h)
	s := source(t, e, sid("src"))
	pin, err := s.Pin(ctx, engine.PinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	md := pin.Metadata()
	if md.Generation != info(t, s).Meta.Generation {
		t.Fatalf("the pin holds generation %d, the copy is at %d", md.Generation, info(t, s).Meta.Generation)
	}
	paths := map[string]string{}
	for _, f := range md.Files {
		if paths[f.Name], err = pin.Path(f.Name); err != nil {
			t.Fatal(err)
		}
	}
	// Newer commits, the last of which lists none of the pinned files.
	apply(t, s, docs(340, 60, 1))
	flush(t, s)
	st, err := s.StartStaging(ctx, "rec-replace")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Publish(ctx, nil, emptyCommit(e, "another-history")); err != nil {
		t.Fatal(err)
	}
	if in := info(t, s); len(in.Meta.Files) != 0 || in.Meta.Commit.HistoryUUID != "another-history" {
		t.Fatalf("the copy did not move on: %+v", in.Meta)
	}
	if _, err := s.Sweep(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range md.Files {
		checkFile(t, paths[f.Name], f)
	}
	if got, ok := md.Lookup(md.Files[0].Name); !ok || got != md.Files[0] {
		t.Fatal("the pin's metadata changed")
	}
	_, err = pin.Path("seg_not_in_the_commit")
	want(t, "Path of a file not in the commit", err, engine.ErrNotFound)
	_, err = pin.Path("../" + md.Files[0].Name)
	want(t, "Path of a name with a separator", err, engine.ErrInvalidName)

	if err := pin.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pin.Release(ctx); err != nil {
		t.Fatalf("a second Release: %v", err)
	}
	_, err = pin.Path(md.Files[0].Name)
	want(t, "Path after Release", err, engine.ErrPinLost)
	want(t, "Renew after Release", pin.Renew(ctx), engine.ErrPinLost)
	if _, err := s.Sweep(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for name, path := range paths {
		if exists(path) {
			t.Fatalf("%s is still there once its pin is released and the copy swept", name)
		}
	}
}

// testPinTTL: a pin not renewed for its TTL ends.
func testPinTTL(t *testing.T, h Harness) {
	e, _ := fresh(t, h)
	s := source(t, e, sid("src"))
	pin, err := s.Pin(ctx, engine.PinOptions{TTL: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	name := pin.Metadata().Files[0].Name
	eventually(t, "the pin's expiry", func() bool {
		_, err := pin.Path(name)
		return errors.Is(err, engine.ErrPinLost)
	})
	want(t, "Renew of an expired pin", pin.Renew(ctx), engine.ErrPinLost)
}

// testReadOps: ops by seqno range, in batches, with their terms and
// no-ops, and every refusal.
func testReadOps(t *testing.T, h Harness) {
	e, _ := fresh(t, h)
	s := create(t, e, sid("ops"))
	if _, err := s.AcquireLease(ctx, lease("reader", 0, "n1")); err != nil { // keeps every op readable
		t.Fatal(err)
	}
	apply(t, s, docs(0, 10, 1))
	// The copy learns of term 2 (as a recovery from a term-2 source makes
	// it) before it takes term-2 ops above ops of term 1.
	if err := s.AdoptTerm(ctx, 2); err != nil {
		t.Fatal(err)
	}
	apply(t, s, []engine.Op{{SeqNo: 10, PrimaryTerm: 2, Kind: engine.OpNoOp}, {Key: "doc-000003", SeqNo: 11, PrimaryTerm: 2, Kind: engine.OpDelete}})
	apply(t, s, docs(12, 2501, 2))
	flush(t, s)
	apply(t, s, []engine.Op{docs(2513, 1, 2)[0], docs(2515, 1, 2)[0]}) // 2514 never arrives
	got := readOps(t, s, seqno.Range{From: 0, To: 2515})
	if len(got) != 2515 {
		t.Fatalf("read %d ops, want 2515 (2514 is a gap)", len(got))
	}
	for i, op := range got {
		wantSeq := seqno.SeqNo(i)
		if i >= 2514 {
			wantSeq++
		}
		if op.SeqNo != wantSeq {
			t.Fatalf("op %d has seqno %v, want %v", i, op.SeqNo, wantSeq)
		}
	}
	if n := got[10]; n.Kind != engine.OpNoOp || n.PrimaryTerm != 2 || n.Key != "" {
		t.Fatalf("the no-op reads as %+v", n)
	}
	if d := got[11]; d.Kind != engine.OpDelete || d.Key != "doc-000003" || d.PrimaryTerm != 2 {
		t.Fatalf("the delete reads as %+v", d)
	}
	if o := got[5]; o.PrimaryTerm != 1 || !bytes.Equal(o.Value, docs(5, 1, 1)[0].Value) || o.Kind != engine.OpIndex {
		t.Fatalf("op 5 reads as %+v", o)
	}
	if got := readOps(t, s, seqno.Range{From: 7, To: 6}); len(got) != 0 {
		t.Fatalf("an empty range read %d ops", len(got))
	}
	history := info(t, s).Meta.Commit.HistoryUUID
	read := func(r seqno.Range, h string, fn func([]engine.Op) error) error {
		return s.ReadOps(ctx, engine.OpsRequest{Range: r, History: h}, fn)
	}
	none := func([]engine.Op) error { t.Fatal("ops were read"); return nil }
	want(t, "ops past the max seqno", read(seqno.Range{From: 0, To: 2516}, history, none), engine.ErrOutOfRange)
	want(t, "ops of another history", read(seqno.Range{From: 0, To: 1}, "other", none), engine.ErrHistoryMismatch)
	want(t, "ops of no history", read(seqno.Range{From: 0, To: 1}, "", none), engine.ErrInvalidArgument)
	want(t, "a negative range", read(seqno.Range{From: -1, To: 1}, history, none), engine.ErrInvalidArgument)
	want(t, "an inverted range", read(seqno.Range{From: 9, To: 2}, history, none), engine.ErrInvalidArgument)
	stop := errors.New("stop")
	calls := 0
	if err := read(seqno.Range{From: 0, To: 2515}, history, func([]engine.Op) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("an error from fn: %v after %d calls, want it back after 1", err, calls)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.ReadOps(cctx, engine.OpsRequest{Range: seqno.Range{From: 0, To: 2515}, History: history}, func([]engine.Op) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadOps with a cancelled context: %v", err)
	}

	// Below what the copy retains: a Publish retains from its local
	// checkpoint + 1.
	dst := create(t, e, sid("published"))
	st, err := dst.StartStaging(ctx, "rec-compacted")
	if err != nil {
		t.Fatal(err)
	}
	md := stage(t, s, st)
	if err := st.Publish(ctx, md.Files, md.Commit); err != nil {
		t.Fatal(err)
	}
	if r := info(t, dst).Retained; r.From != md.Commit.LocalCheckpoint+1 {
		t.Fatalf("a published copy retains %v, want from %v", r, md.Commit.LocalCheckpoint+1)
	}
	err = dst.ReadOps(ctx, engine.OpsRequest{Range: seqno.Range{From: 0, To: 10}, History: history}, none)
	want(t, "ops below what is retained", err, engine.ErrCompacted)
	if got := readOps(t, dst, seqno.Range{From: md.Commit.LocalCheckpoint + 1, To: 2515}); len(got) != 2 {
		t.Fatalf("the published copy reads %d staged ops, want 2", len(got))
	}
}

// testApply: ops keep their seqno and term, a seqno already processed is
// skipped, and ops of a newer term over ops above the global checkpoint
// are refused whole, or replace them.
func testApply(t *testing.T, h Harness) {
	e, _ := fresh(t, h)
	s := create(t, e, sid("apply"))
	apply(t, s, docs(5, 5, 1)) // out of order: 0..4 come later
	if in := info(t, s); in.Seq.MaxSeqNo != 9 || in.Seq.LocalCheckpoint != seqno.NoOpsPerformed {
		t.Fatalf("after ops 5..9: %v, want max 9 and no checkpoint", in.Seq)
	}
	apply(t, s, docs(0, 5, 1))
	apply(t, s, docs(3, 4, 1)) // already processed: skipped
	if in := info(t, s); in.Seq.MaxSeqNo != 9 || in.Seq.LocalCheckpoint != 9 || in.PrimaryTerm != 1 {
		t.Fatalf("after ops 0..9: %v, term %d", in.Seq, in.PrimaryTerm)
	}
	if got := readOps(t, s, seqno.Range{From: 0, To: 9}); len(got) != 10 {
		t.Fatalf("%d ops held, want 10 (no op twice)", len(got))
	}
	before := digest(t, s, seqno.Unassigned)
	err := s.Apply(ctx, docs(10, 2, 3))
	if err != nil {
		want(t, "ops of a newer term over ops above the global checkpoint", err, engine.ErrStaleTerm)
		if in := info(t, s); in.Seq.MaxSeqNo != 9 || digest(t, s, seqno.Unassigned) != before {
			t.Fatalf("a refused batch changed the copy: %v", in.Seq)
		}
	} else if got := readOps(t, s, seqno.Range{From: 10, To: 11}); len(got) != 2 || got[0].PrimaryTerm != 3 {
		t.Fatalf("taken, the new term's ops read as %+v", got)
	}
	if in := info(t, s); in.PrimaryTerm != 1 {
		t.Fatalf("the copy's term became %d from the ops it received", in.PrimaryTerm)
	}
	if err := s.AdoptTerm(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if err := s.AdoptTerm(ctx, 2); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	if in := info(t, s); in.PrimaryTerm != 4 || in.Meta.Commit.PrimaryTerm != 4 {
		t.Fatalf("after AdoptTerm(4), AdoptTerm(2) and a flush: term %d, committed %d", in.PrimaryTerm, in.Meta.Commit.PrimaryTerm)
	}
}
