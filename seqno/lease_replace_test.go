package seqno

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// A replaced lease is gone and its successor held, on disk too, and the
// successor lives for its own TTL, not the set's.
func TestReplaceLease(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "leases")
	l, err := OpenLeases(path, LeaseOptions{TTL: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddHeld("rec", 5, "n2", "n2", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Replace("rec", "n3", RetentionLease{ID: "copy-n2", RetainingSeqNo: 9}); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("replace by another holder: %v, want ErrNotHolder", err)
	}
	if _, err := l.Replace("gone", "n2", RetentionLease{ID: "copy-n2", RetainingSeqNo: 9}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("replace of an unknown lease: %v, want ErrLeaseLost", err)
	}
	got, err := l.Replace("rec", "n2", RetentionLease{ID: "copy-n2", RetainingSeqNo: 9, Holder: "n2", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Timestamp.Equal(now) || got.TTL != time.Hour {
		t.Fatalf("replaced lease %+v", got)
	}
	re, err := OpenLeases(path, LeaseOptions{TTL: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if ls := re.List(); len(ls) != 1 || ls[0].ID != "copy-n2" || ls[0].RetainingSeqNo != 9 || ls[0].TTL != time.Hour {
		t.Fatalf("leases on disk after the replace: %+v", ls)
	}
	now = now.Add(30 * time.Minute) // past the set's TTL, within the lease's
	if s, ok := re.MinRetainingSeqNo(); !ok || s != 9 {
		t.Fatalf("the copy's lease no longer retains after the set's TTL: %v %v", s, ok)
	}
	if at, _ := re.EarliestExpiry(); !at.Equal(got.Timestamp.Add(time.Hour)) {
		t.Fatalf("expiry %v, want an hour after the replace", at)
	}
	now = now.Add(31 * time.Minute)
	if gone, err := re.Expire(); err != nil || len(gone) != 1 {
		t.Fatalf("expire after the lease's TTL: %v %v", gone, err)
	}
}

// A successor that would retain below the floor is refused and the old
// lease is kept.
func TestReplaceLeaseBelowFloor(t *testing.T) {
	l, err := OpenLeases(filepath.Join(t.TempDir(), "leases"), LeaseOptions{TTL: time.Minute, Floor: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddHeld("rec", 10, "n2", "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Replace("rec", "", RetentionLease{ID: "copy-n2", RetainingSeqNo: 3}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("replace below the floor: %v, want ErrCompacted", err)
	}
	if ls := l.List(); len(ls) != 1 || ls[0].ID != "rec" {
		t.Fatalf("leases after a refused replace: %+v", ls)
	}
}
