package shardstore

import (
	"errors"
	"testing"
	"time"

	"github.com/recoverd/recoverd/seqno"
)

// The copy's lease keeps the ops the copy lacks past RetainOps, and each
// acknowledgement lets the op log drop what the copy holds.
func TestCopyLeaseRetainsAndAcks(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{RetainOps: 10, LeaseTTL: time.Minute, CopyRetention: time.Hour})
	mustIndex(t, s, 50, 0) // seqnos 0..49
	if _, err := s.Leases().AddHeld("recovery-n2-r1", 20, "n2", "n2", 0); err != nil {
		t.Fatal(err)
	}
	l, err := s.HandOff("recovery-n2-r1", "n2", "n2", 30)
	if err != nil {
		t.Fatal(err)
	}
	if l.ID != CopyLeaseID("n2") || l.Holder != "n2" || l.RetainingSeqNo != 30 || s.Leases().TTLOf(l) != time.Hour {
		t.Fatalf("the copy's lease is %+v", l)
	}
	mustIndex(t, s, 100, 50) // checkpoint 149: RetainOps alone keeps from 140
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if r := s.RetainedOps(); r.From != 30 {
		t.Fatalf("retained %v with the copy at 29, want from 30", r)
	}
	if _, err := s.AckCopy("n2", 99); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AckCopy("n2", 60); err != nil { // a late ack does not lower the lease
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if r := s.RetainedOps(); r.From != 100 {
		t.Fatalf("retained %v with the copy at 99, want from 100", r)
	}
	if _, err := s.AckCopy("n3", 99); !errors.Is(err, seqno.ErrLeaseLost) {
		t.Fatalf("ack of a copy without a lease: %v, want ErrLeaseLost", err)
	}
}
