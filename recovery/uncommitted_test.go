package recovery

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/transfer"
)

// A recovery onto a node without the shard creates no shard there until it
// publishes: while it runs the shard is not one of the node's, and when it
// fails (the source stops serving files) or is cancelled nothing of it is
// left, not even an empty shard with a new history.
func TestFailedRecoveryOntoANewTargetLeavesNoShard(t *testing.T) {
	for _, end := range []string{"failed", "cancelled"} {
		t.Run(end, func(t *testing.T) {
			// Five files copied one at a time, each in a stream of its
			// own (over 1 MiB: not batched): the fault below stops the
			// ones not started yet.
			e := newEnv(t, shardstore.Options{}, Config{Throttle: transfer.NewThrottle(2 << 20), Fetch: transfer.FetchOptions{Parallel: 1}})
			src := e.source()
			for i := 0; i < 5; i++ {
				write(t, src, 1100, i*1100, 1024)
				flush(t, src)
			}
			r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr, ID: "r-" + end})
			if err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				s, _ := r.State()
				if s.Totals.FromPeer.RecoveredBytes > 0 {
					break
				}
				if time.Now().After(deadline) || s.Stage.Finished() {
					t.Fatalf("no bytes moved: %s %s", s.Stage, s.Error)
				}
			}
			if _, err := e.tgt.Shard(context.Background(), shardID); !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("while the recovery runs the target's shard is %v, want not found", err)
			}
			if shardstore.Exists(e.tgt.dir, shardID) {
				t.Fatal("the shard exists on disk before the recovery published")
			}
			if end == "cancelled" {
				if _, err := e.m.Cancel(context.Background(), r.s.ID, "test"); err != nil {
					t.Fatal(err)
				}
			} else {
				e.faults.set("/recoverd.v1.PeerService/FetchFile", true)
				<-r.Done()
			}
			s, _ := r.State()
			if string(s.Stage) != end {
				t.Fatalf("recovery ended %s (%s), want %s", s.Stage, s.Error, end)
			}
			if _, err := e.tgt.Shard(context.Background(), shardID); !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("after the recovery %s the target's shard is %v, want not found", end, err)
			}
			if _, err := os.Stat(shardstore.Dir(e.tgt.dir, shardID)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the shard directory the recovery created is left: %v", err)
			}
			if ids, _ := shardstore.List(e.tgt.dir); len(ids) != 0 {
				t.Fatalf("the target lists shards %v", ids)
			}
		})
	}
}
