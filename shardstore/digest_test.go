package shardstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoverd/recoverd/seqno"
)

func TestDigestDoesNotStopWrites(t *testing.T) {
	// A digest scans the whole shard. Writes need the shard's lock; a
	// digest that held it for its scan stopped indexing on a recovery's
	// source for as long. A real writer must make progress while a digest
	// of a shard of 60,000 documents in 6 segments runs.
	var (
		written  atomic.Int64
		inScan   = make(chan struct{})
		scanOnce sync.Once
	)
	const progress = 20 // writes that must complete while the digest runs
	opts := Options{Failpoint: func(name string) {
		if name != "digest.scan" {
			return
		}
		// Hold the scan until the writer has made progress (or give up:
		// the assertion below reports it).
		from := written.Load()
		scanOnce.Do(func() { close(inScan) })
		for deadline := time.Now().Add(time.Minute); written.Load() < from+progress && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}}
	s := openNew(t, t.TempDir(), opts)
	for seg := range 6 {
		mustIndex(t, s, 10000, seg*10000)
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if _, err := s.Index(ctx, fmt.Sprintf("live-%d", i), []byte("v")); err != nil {
				writerDone <- err
				return
			}
			written.Add(1)
		}
	}()
	for written.Load() == 0 { // the writer is running
		time.Sleep(time.Millisecond)
	}
	before := written.Load()
	d, err := s.Digest(ctx)
	during := written.Load() - before
	close(stop)
	if werr := <-writerDone; werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if during < progress {
		t.Fatalf("%d writes completed while the digest ran, want at least %d: the digest stops writes", during, progress)
	}
	select {
	case <-inScan:
	default:
		t.Fatal("the digest never reached its scan")
	}
	if d == "" {
		t.Fatal("empty digest")
	}
}

func TestDigestAtSeqNoEqualsACopyHoldingOnlyThoseOps(t *testing.T) {
	src := openNew(t, t.TempDir(), Options{RetainOps: 100000})
	mustIndex(t, src, 1000, 0) // seqnos 0..999
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	ref, err := src.AcquireCommit() // what a recovery pins: max seqno 999
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Release()
	// Above the pinned commit: overwrites and deletes of keys it holds.
	mustIndex(t, src, 100, 0)
	for i := range 50 {
		if _, err := src.Delete(ctx, fmt.Sprintf("doc-%06d", 100+i)); err != nil {
			t.Fatal(err)
		}
	}
	upTo := src.Stats().Seq.MaxSeqNo // 1149: the seqno the copy reaches
	atUpTo, at, err := src.DigestAt(ctx, nil, upTo)
	if err != nil || at != upTo {
		t.Fatalf("DigestAt(%v) = %v at %v", upTo, err, at)
	}
	// The source goes on: more overwrites and deletes of the same keys, a
	// flush and a merge that fold them into its segments.
	mustIndex(t, src, 50, 0)
	for i := range 50 {
		if _, err := src.Delete(ctx, fmt.Sprintf("doc-%06d", 200+i)); err != nil {
			t.Fatal(err)
		}
	}
	mustIndex(t, src, 10, 5000)
	if err := src.Merge(); err != nil {
		t.Fatal(err)
	}

	// The copy: every op of the source up to upTo, applied as a replica.
	dst := openNew(t, t.TempDir(), Options{})
	var ops []Op
	if err := src.ReadOps(seqno.Range{From: 0, To: upTo}, func(op Op) error { ops = append(ops, op); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := dst.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	want := digest(t, dst)
	if atUpTo != want {
		t.Fatal("the source's digest at the copy's seqno differs from the copy's (before the source moved on)")
	}
	if _, _, err := src.DigestAt(ctx, nil, upTo); !errors.Is(err, seqno.ErrCompacted) {
		t.Fatalf("DigestAt from a commit past the seqno = %v, want ErrCompacted", err)
	}
	got, _, err := src.DigestAt(ctx, ref, upTo)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatal("the source's digest at the copy's seqno, from the pinned commit, differs from the copy's")
	}
	if digest(t, src) == want {
		t.Fatal("the test is void: the source's whole content equals the copy's")
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := src.DigestAt(cctx, ref, upTo); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled digest returned %v", err)
	}
}

func TestDigestIgnoresNoOps(t *testing.T) {
	// A replica that applied a promotion's no-ops holds them in its op
	// log above its commit: they change no document, so not its digest.
	src := openNew(t, t.TempDir(), Options{RetainOps: 1000})
	if err := src.Apply(ctx, []Op{{Key: "a", SeqNo: 0, PrimaryTerm: 1, Value: []byte("1")}, {Key: "b", SeqNo: 2, PrimaryTerm: 1, Value: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	if err := src.Promote(); err != nil { // a no-op at seqno 1
		t.Fatal(err)
	}
	var ops []Op
	if err := src.ReadOps(seqno.Range{From: 0, To: 2}, func(op Op) error { ops = append(ops, op); return nil }); err != nil {
		t.Fatal(err)
	}
	replica := openNew(t, t.TempDir(), Options{})
	if err := replica.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if digest(t, replica) != digest(t, src) {
		t.Fatal("no-ops changed the replica's digest")
	}
}
