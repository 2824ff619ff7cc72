package seqno

import (
	"path/filepath"
	"testing"
	"time"
)

func TestEarliestExpiry(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	l, err := OpenLeases(filepath.Join(t.TempDir(), "leases"), LeaseOptions{TTL: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.EarliestExpiry(); ok {
		t.Fatal("an empty set has an expiry")
	}
	if _, err := l.Add("a", 0, "n1"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(20 * time.Second)
	if _, err := l.Add("b", 0, "n2"); err != nil {
		t.Fatal(err)
	}
	if at, ok := l.EarliestExpiry(); !ok || !at.Equal(now.Add(40*time.Second)) {
		t.Fatalf("earliest expiry %v %v, want a's, in 40s", at, ok)
	}
	now = now.Add(10 * time.Second)
	if _, err := l.Renew("a", 0); err != nil { // a renewed: b is next
		t.Fatal(err)
	}
	if at, ok := l.EarliestExpiry(); !ok || !at.Equal(now.Add(50*time.Second)) {
		t.Fatalf("earliest expiry %v %v, want b's, in 50s", at, ok)
	}
	now = now.Add(55 * time.Second) // b expired, not yet removed
	if at, ok := l.EarliestExpiry(); !ok || !at.Equal(now.Add(5*time.Second)) {
		t.Fatalf("earliest expiry %v %v, want a's, in 5s", at, ok)
	}
}
