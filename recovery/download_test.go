package recovery

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// TestFilesReportsTheOpsErrorNotTheDownloadsCancellation: the op stream
// of a snapshot plan fails for good while the downloads run. The recovery
// fails with the ops' error, not with the cancellation that error caused
// on the snapshot side, and does not fall back (the repository did not
// fail).
func TestFilesReportsTheOpsErrorNotTheDownloadsCancellation(t *testing.T) {
	e := newEnv(t, shardstore.Options{RetainOps: 1000}, Config{Throttle: transfer.NewThrottle(256 << 10), MaxSnapshotDownloads: 8})
	failoverSource(t, e)
	write(t, e.source(), 50, 10000, 128) // ops above the snapshot
	e.faults.set("/recoverd.v1.PeerService/FetchOps", true)
	s := e.run(StartRequest{})
	if s.Stage != StageFailed || s.Plan == nil || s.Plan.Kind != planner.KindSnapshot {
		t.Fatalf("recovery %s with plan %+v: %s", s.Stage, s.Plan, s.Error)
	}
	// Every download is in flight (none waits for a slot) when the ops fail.
	if !strings.HasPrefix(s.Error, "fetch ops") || !strings.Contains(s.Error, "retries exhausted") || strings.Contains(s.Error, "snapshot: download") {
		t.Fatalf("error %q: want the op stream's failure, not the downloads' cancellation", s.Error)
	}
	if len(s.Fallbacks) != 0 {
		t.Fatalf("an op stream failure made the plan fall back: %+v", s.Fallbacks)
	}
	noStaging(t, e.target())
}

// TestHybridFetchesAFailedFileWhileDownloadsGoOn: in a hybrid plan a blob
// is missing (a failure of that file, not of the repository). The file is
// fetched from the source as soon as its download fails, while the other
// downloads go on, not after them; the repository is not given up on.
func TestHybridFetchesAFailedFileWhileDownloadsGoOn(t *testing.T) {
	e := newEnv(t, shardstore.Options{RetainOps: 0}, Config{Throttle: transfer.NewThrottle(512 << 10), MaxSnapshotDownloads: 4})
	src := e.source()
	for i, docs := range []int{800, 40, 800} {
		write(t, src, docs, i*1000, 1024)
		flush(t, src)
	}
	res, err := snapshot.Create(context.Background(), e.repo, snapshot.StoreSource(src), snapshot.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, src, 40, 5000, 1024)
	flush(t, src)
	small := res.Manifest.Files[0]
	for _, f := range res.Manifest.Files {
		if f.Length < small.Length {
			small = f
		}
	}
	if err := os.Remove(filepath.Join(e.repo.Root(), filepath.FromSlash(small.Blob))); err != nil {
		t.Fatal(err)
	}
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr})
	if err != nil {
		t.Fatal(err)
	}
	var pending []string // snapshot files not done when the missing one was
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		s, _ := r.State()
		if time.Now().After(deadline) || s.Stage.Finished() && s.Stage != StageDone {
			t.Fatalf("recovery %s: %s", s.Stage, s.Error)
		}
		done := false
		pending = pending[:0]
		for _, f := range s.Files {
			switch {
			case f.Name == small.Name:
				done = f.Done
			case f.Source == FromSnapshot && !f.Done:
				pending = append(pending, f.Name)
			}
		}
		if done {
			break
		}
	}
	<-r.Done()
	s, _ := r.State()
	requireDone(t, s)
	if len(pending) == 0 {
		t.Fatalf("%s came from the source only once every download was done", small.Name)
	}
	if s.Plan.Kind != planner.KindHybrid || len(s.Fallbacks) != 1 || !contains(s.Fallbacks[0].Cause, small.Name) || contains(s.Fallbacks[0].Cause, "repository failed") {
		t.Fatalf("plan %s, fallbacks %+v: want one per-file fallback for %s", s.Plan.Kind, s.Fallbacks, small.Name)
	}
	if s.Totals.FromSnapshot.Files != 2 || s.Totals.FromPeer.Files != 2 {
		t.Fatalf("totals %+v: want 2 files from the snapshot, 2 from the peer", s.Totals)
	}
	if digest(t, e.target()) != digest(t, src) {
		t.Fatal("copy differs")
	}
}
