package enginetest

import (
	"errors"
	"testing"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

func lease(id string, retaining seqno.SeqNo, holder string) engine.LeaseRequest {
	return engine.LeaseRequest{ID: id, RetainingSeqNo: retaining, Source: "recovery of " + id, Holder: holder}
}

// testLeases: retention leases, their holders and bounds, what they keep,
// and that they survive a restart.
func testLeases(t *testing.T, h Harness) {
	e, dir := fresh(t, h)
	s := source(t, e, sid("src"))
	r0 := info(t, s).Retained.From // the engine may retain more, never less
	if r0 > 300 {
		t.Fatalf("the copy retains from %v: ops above its commit are gone", r0)
	}
	l, err := s.AcquireLease(ctx, lease("l1", r0, "n1"))
	if err != nil {
		t.Fatal(err)
	}
	if l.ID != "l1" || l.RetainingSeqNo != r0 || l.Holder != "n1" || l.Source != "recovery of l1" || l.Timestamp.IsZero() {
		t.Fatalf("AcquireLease = %+v", l)
	}
	in := info(t, s)
	if len(in.Leases) != 1 || in.Leases[0].ID != "l1" || in.LeaseTTL <= 0 {
		t.Fatalf("Info lists leases %+v, TTL %v", in.Leases, in.LeaseTTL)
	}
	_, err = s.AcquireLease(ctx, lease("l1", r0, "n1"))
	want(t, "a lease id taken", err, engine.ErrLeaseExists)
	bounded := lease("l2", r0, "n1")
	bounded.MaxPerHolder = 1
	_, err = s.AcquireLease(ctx, bounded)
	want(t, "a holder at its bound", err, engine.ErrTooManyLeases)
	bounded.MaxPerHolder = 2
	if _, err := s.AcquireLease(ctx, bounded); err != nil {
		t.Fatalf("a holder under its bound: %v", err)
	}

	// Renewals: by the holder, up, never down.
	_, err = s.RenewLease(ctx, "l1", "n2", r0+20)
	want(t, "renewal by another holder", err, engine.ErrNotHolder)
	if l, err := s.RenewLease(ctx, "l1", "n1", r0+20); err != nil || l.RetainingSeqNo != r0+20 {
		t.Fatalf("RenewLease up to %v = %+v, %v", r0+20, l, err)
	}
	if l, err := s.RenewLease(ctx, "l1", "n1", seqno.Unassigned); err != nil || l.RetainingSeqNo != r0+20 {
		t.Fatalf("RenewLease keeping its seqno = %+v, %v", l, err)
	}
	_, err = s.RenewLease(ctx, "l1", "n1", r0+10)
	want(t, "a renewal lowering the retaining seqno", err, engine.ErrInvalidArgument)
	_, err = s.RenewLease(ctx, "nobody", "n1", r0+10)
	want(t, "renewal of a lease not held", err, engine.ErrLeaseLost)

	// What a lease keeps: ops at or above its seqno, whatever commits follow.
	apply(t, s, docs(340, 200, 1))
	flush(t, s)
	apply(t, s, docs(540, 200, 1))
	flush(t, s)
	if got := readOps(t, s, seqno.Range{From: r0 + 20, To: 739}); len(got) != int(739-r0-20+1) {
		t.Fatalf("read %d ops above the lease, want %d", len(got), 739-r0-20+1)
	}

	// Releases: by the holder; an unknown lease is no error.
	want(t, "release by another holder", s.ReleaseLease(ctx, "l1", "n2"), engine.ErrNotHolder)
	if err := s.ReleaseLease(ctx, "l2", "n1"); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLease(ctx, "l2", "n1"); err != nil {
		t.Fatalf("releasing a lease twice: %v", err)
	}

	// Durable: l1 outlives a restart of the engine.
	e.Close()
	e = open(t, h, dir, Options{})
	sh, err := e.Shard(ctx, sid("src"))
	if err != nil {
		t.Fatal(err)
	}
	in = info(t, sh)
	if len(in.Leases) != 1 || in.Leases[0].ID != "l1" || in.Leases[0].RetainingSeqNo != r0+20 || in.Leases[0].Holder != "n1" {
		t.Fatalf("leases after a restart: %+v", in.Leases)
	}
	// Below what the copy retains: the ops are gone, no lease brings them
	// back.
	pub := create(t, e, sid("pub"))
	st, err := pub.StartStaging(ctx, "rec-floor")
	if err != nil {
		t.Fatal(err)
	}
	md := stage(t, sh, st)
	if err := st.Publish(ctx, md.Files, md.Commit); err != nil {
		t.Fatal(err)
	}
	_, err = pub.AcquireLease(ctx, lease("late", md.Commit.LocalCheckpoint, "n1"))
	want(t, "a lease below what the copy retains", err, engine.ErrCompacted)
}

// testLeaseExpiry: a lease not renewed for its TTL is lost, no longer
// listed, and swept.
func testLeaseExpiry(t *testing.T, h Harness) {
	dir := t.TempDir()
	e := open(t, h, dir, Options{LeaseTTL: 100 * time.Millisecond})
	s := source(t, e, sid("src"))
	r0 := info(t, s).Retained.From
	if _, err := s.AcquireLease(ctx, lease("swept", r0, "n1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, lease("renewed", r0, "n1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the leases' expiry", func() bool { return len(info(t, s).Leases) == 0 })
	_, err := s.RenewLease(ctx, "renewed", "n1", seqno.Unassigned)
	want(t, "renewal of an expired lease", err, engine.ErrLeaseLost)
	res, err := s.Sweep(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Leases) != 1 || res.Leases[0] != "swept" {
		t.Fatalf("Sweep expired leases %v, want [swept] (the other was dropped by its failed renewal)", res.Leases)
	}
	if _, err := s.AcquireLease(ctx, lease("swept", r0, "n2")); err != nil {
		t.Fatalf("the id of an expired lease cannot be taken again: %v", err)
	}
}

// testHandOff: the recovery's lease becomes the copy's, or the engine says
// it has no replication of its own.
func testHandOff(t *testing.T, h Harness) {
	e, _ := fresh(t, h)
	s := source(t, e, sid("src"))
	_, err := s.HandOff(ctx, engine.HandOff{LeaseID: "../x", Holder: "n1", Copy: "n1", From: 10})
	want(t, "a hand-off of a bad lease id", err, engine.ErrInvalidName)
	_, err = s.HandOff(ctx, engine.HandOff{LeaseID: "rec", Holder: "n1", Copy: "a/b", From: 10})
	want(t, "a hand-off to a bad copy name", err, engine.ErrInvalidName)
	if _, err := s.AcquireLease(ctx, lease("rec", info(t, s).Retained.From, "n1")); err != nil {
		t.Fatal(err)
	}
	l, err := s.HandOff(ctx, engine.HandOff{LeaseID: "rec", Holder: "n1", Copy: "n1", From: 340})
	if errors.Is(err, errors.ErrUnsupported) && !h.Replicates {
		if in := info(t, s); len(in.Leases) != 1 || in.Leases[0].ID != "rec" {
			t.Fatalf("a hand-off the engine does not support changed the leases: %+v", in.Leases)
		}
		return
	}
	if err != nil || l.RetainingSeqNo != 340 || l.ID == "rec" {
		t.Fatalf("HandOff = %+v, %v", l, err)
	}
	in := info(t, s)
	if len(in.Leases) != 1 || in.Leases[0].ID != l.ID || in.Leases[0].RetainingSeqNo != 340 {
		t.Fatalf("after the hand-off the copy lists %+v, want the copy's lease alone", in.Leases)
	}
	_, err = s.HandOff(ctx, engine.HandOff{LeaseID: "rec", Holder: "n1", Copy: "n1", From: 340})
	want(t, "a hand-off of a lease handed off already", err, engine.ErrLeaseLost)
}

// testHandOffExpiry: the copy's lease outlives the recovery lease TTL, is
// renewed by nothing recoverd does, and expires after the copy retention
// period: a copy that never comes back does not pin history forever.
func testHandOffExpiry(t *testing.T, h Harness) {
	e := open(t, h, t.TempDir(), Options{LeaseTTL: 50 * time.Millisecond, CopyRetention: time.Hour})
	s := source(t, e, sid("src"))
	from := info(t, s).Retained.From
	if _, err := s.AcquireLease(ctx, lease("rec", from, "n1")); err != nil {
		t.Fatal(err)
	}
	l, err := s.HandOff(ctx, engine.HandOff{LeaseID: "rec", Holder: "n1", Copy: "n1", From: from})
	if errors.Is(err, errors.ErrUnsupported) && !h.Replicates {
		t.Skip("the engine has no replication of its own")
	}
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // four recovery lease TTLs
	if in := info(t, s); len(in.Leases) != 1 || in.Leases[0].ID != l.ID {
		t.Fatalf("the copy's lease did not outlive the recovery lease TTL: %+v", in.Leases)
	}
	if res, err := s.Sweep(ctx, nil); err != nil || len(res.Leases) != 0 {
		t.Fatalf("a sweep within the copy retention period expired %v (%v)", res.Leases, err)
	}

	e2 := open(t, h, t.TempDir(), Options{LeaseTTL: time.Hour, CopyRetention: 100 * time.Millisecond})
	s2 := source(t, e2, sid("src"))
	from = info(t, s2).Retained.From
	if _, err := s2.AcquireLease(ctx, lease("rec", from, "n1")); err != nil {
		t.Fatal(err)
	}
	if l, err = s2.HandOff(ctx, engine.HandOff{LeaseID: "rec", Holder: "n1", Copy: "n1", From: from}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the copy's lease expiry", func() bool { return len(info(t, s2).Leases) == 0 })
	res, err := s2.Sweep(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Leases) != 1 || res.Leases[0] != l.ID {
		t.Fatalf("Sweep expired leases %v, want the copy's %s", res.Leases, l.ID)
	}
}
