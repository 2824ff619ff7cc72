package seqno

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// Leases taken for a holder: bounded per holder, renewed and released only
// by it, the holder kept across a reopen; an expired one is anybody's.
func TestLeasesHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases")
	clk := &fakeClock{t: time.Unix(1000, 0)}
	opts := LeaseOptions{TTL: time.Minute, Now: clk.now}
	l, err := OpenLeases(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a1", "a2"} {
		if _, err := l.AddHeld(id, 0, "recovery/x@a", "a", 2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.AddHeld("a3", 0, "recovery/y@a", "a", 2); !errors.Is(err, ErrTooManyLeases) {
		t.Fatalf("a third lease for a holder bounded to 2: %v", err)
	}
	if _, err := l.AddHeld("b1", 0, "recovery/x@b", "b", 2); err != nil {
		t.Fatalf("another holder is not bounded by a's leases: %v", err)
	}
	if _, err := l.RenewHeld("a1", "b", 0); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("b renews a's lease: %v", err)
	}
	if err := l.RemoveHeld("a1", "b"); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("b releases a's lease: %v", err)
	}
	if err := l.RemoveHeld("a1", ""); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("the anonymous holder releases a's lease: %v", err)
	}
	l2, err := OpenLeases(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l2.RenewHeld("a1", "a", 5); err != nil {
		t.Fatalf("a renews its lease after a reopen: %v", err)
	}
	if err := l2.RemoveHeld("a2", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := l2.AddHeld("a3", 0, "recovery/y@a", "a", 2); err != nil {
		t.Fatalf("a lease released frees a place: %v", err)
	}
	clk.t = clk.t.Add(2 * time.Minute) // all expired
	if _, err := l2.AddHeld("a1", 0, "recovery/z@b", "b", 2); err != nil {
		t.Fatalf("an expired lease's id is taken again by another holder: %v", err)
	}
	if err := l2.RemoveHeld("a3", "b"); err != nil {
		t.Fatalf("an expired lease is anybody's to remove: %v", err)
	}
	if ls := l2.List(); len(ls) != 1 || ls[0].ID != "a1" || ls[0].Holder != "b" {
		t.Fatalf("leases: %+v", ls)
	}
}
