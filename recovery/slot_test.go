package recovery

import (
	"context"
	"testing"
	"time"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/shardstore"
)

// TestPinWaitCountsOnlyTheSource: --pin-wait bounds the time a recovery
// waits for its source, not the time it spends queued behind this node's
// other recoveries. The source is at its limit of outgoing recoveries and
// the node's only slot is busy for longer than --pin-wait (after a rack
// loss, thousands of recoveries queue on a node); the recovery, refused
// once, must not fail when it gets the slot back and is refused again, and
// it completes once the source has room.
func TestPinWaitCountsOnlyTheSource(t *testing.T) {
	const pinWait = 2 * time.Second
	e := newEnv(t, shardstore.Options{}, Config{MaxConcurrent: 1, PinWait: pinWait})
	src := e.source()
	write(t, src, 100, 0, 200)
	flush(t, src)

	// The source at its limit: every pin it grants is taken.
	var pins []string
	for {
		resp, err := e.peer.PinCommit(context.Background(), &pb.PinCommitRequest{Shard: pbconv.ShardID(shardID), Holder: "test"})
		if rpcerr.Reason(err) == pb.ErrorReason_TOO_MANY_PINS {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pins = append(pins, resp.Pin.Id)
	}
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr})
	if err != nil {
		t.Fatal(err)
	}
	state := func() State { s, _ := r.State(); return s }
	waitUntil(t, "the recovery to be refused by the source and queued again", func() bool {
		s := state()
		return s.Stage == StageQueued && len(s.Stages) > 1
	})

	// The node is busy: another recovery holds its only slot for longer
	// than --pin-wait.
	e.m.slots <- struct{}{}
	time.Sleep(pinWait + 500*time.Millisecond)
	asked := len(state().Stages)
	<-e.m.slots

	// It gets the slot, asks, is refused again: it must wait on, queued.
	waitUntil(t, "the recovery to ask the source again", func() bool {
		s := state()
		return s.Stage.Finished() || len(s.Stages) >= asked+2 && s.Stage == StageQueued
	})
	if s := state(); s.Stage.Finished() {
		t.Fatalf("the recovery ended %s after %v queued for this node's slot, with the source refusing it for well under --pin-wait (%v): %s",
			s.Stage, pinWait+500*time.Millisecond, pinWait, s.Error)
	}
	for _, id := range pins {
		if _, err := e.peer.ReleasePin(context.Background(), &pb.ReleasePinRequest{PinId: id}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-r.Done():
	case <-time.After(time.Minute):
		t.Fatal("the recovery did not finish in a minute once the source had room")
	}
	requireDone(t, state())
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
