package recovery

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/transfer"
)

// A node restarted after a crash releases the lease and the commit pin its
// interrupted recoveries held on their sources, rather than leaving them
// to expire (the pin would hold one of the source's outgoing slots).
func TestRestartReleasesWhatInterruptedRecoveriesHeld(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, shardstore.Options{}, Config{StateDir: dir})
	src := e.source()
	write(t, src, 20, 0, 64)
	flush(t, src)
	ctx := context.Background()
	client, err := e.m.cfg.Dial(ctx, e.addr)
	if err != nil {
		t.Fatal(err)
	}
	pin, _, err := transfer.PinCommit(ctx, client, shardID, time.Minute, "recovery/r-crashed@target")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := transfer.AcquireLease(ctx, client, shardID, leaseID("target", "r-crashed"), 20, "recovery/r-crashed@target"); err != nil {
		t.Fatal(err)
	}
	// What the crashed process left: its journal, naming the pin.
	s := Snapshot{ID: "r-crashed", Shard: shardID, Source: e.addr, Stage: StageFiles, Start: time.Now(), pinID: pin.ID}
	e.m.journal(s)

	if err := e.m.Open(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, perr := transfer.RenewPin(ctx, client, pin.ID)
		if len(src.Leases().List()) == 0 && errors.Is(perr, transfer.ErrPinNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: leases %v, pin renewal %v", src.Leases().List(), perr)
		}
	}
	if _, err := transfer.RenewLease(ctx, client, shardID, leaseID("target", "r-crashed"), seqno.Unassigned); !errors.Is(err, seqno.ErrLeaseLost) {
		t.Fatalf("the lease is still held: %v", err)
	}
	r, err := e.m.Get("r-crashed")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := r.Snapshot(); s.Stage != StageFailed {
		t.Fatalf("interrupted recovery reported as %s", s.Stage)
	}
}
