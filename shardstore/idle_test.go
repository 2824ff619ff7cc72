package shardstore

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// openFDs counts the descriptors this process holds.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// An open shard that is not being written holds one descriptor (its
// lock) and no op log write buffer: the op log opens its file and takes a
// buffer for a write and gives both back once the write is durable.
func TestIdleShardHoldsOnlyItsLock(t *testing.T) {
	dir := t.TempDir()
	const n = 20
	before := openFDs(t)
	var shards []*Shard
	for i := range n {
		s, err := Open(dir, ShardID{Index: "idx", Shard: i}, Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		mustIndex(t, s, 50, 0)
		shards = append(shards, s)
	}
	if got := openFDs(t) - before; got != n {
		t.Fatalf("%d shards written to then idle hold %d descriptors, want %d (their locks)", n, got, n)
	}
	for _, s := range shards {
		if s.oplog.w != nil || s.oplog.f != nil {
			t.Fatalf("shard %s holds its op log's file or write buffer while idle", s.ID())
		}
	}
	// Reopened: the same, and the ops are all there.
	for i, s := range shards {
		shards[i] = reopen(t, s, Options{})
	}
	if got := openFDs(t) - before; got != n {
		t.Fatalf("%d reopened shards hold %d descriptors, want %d", n, got, n)
	}
	for _, s := range shards {
		if st := s.Stats(); st.Seq.LocalCheckpoint != 49 {
			t.Fatalf("shard %s reopened at local checkpoint %d, want 49", s.ID(), st.Seq.LocalCheckpoint)
		}
		mustIndex(t, s, 1, 50)
	}
}

// Close takes the shard's lock and then each staging's; Publish takes its
// staging's lock and then the shard's. Close must not wait for a staging
// while it holds the shard's lock, or the two deadlock.
func TestCloseDoesNotHoldTheShardLockWhileEndingStagings(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	st, err := s.StartStaging("rec-1")
	if err != nil {
		t.Fatal(err)
	}
	st.mu.Lock() // what Publish holds when it asks for the shard's lock
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close marks the shard closed and releases its lock before it ends
	// the staging; a Close that held it would keep TryRLock failing.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s.mu.TryRLock() {
			c := s.closed
			s.mu.RUnlock()
			if c {
				break
			}
		}
		if time.Now().After(deadline) {
			st.mu.Unlock()
			<-closed
			t.Fatal("Close holds the shard's lock while it waits for a staging's lock: a concurrent Publish deadlocks with it")
		}
		time.Sleep(time.Millisecond)
	}
	st.mu.Unlock()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := st.Publish(nil, s.Metadata().Commit); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish on a staging of a closed shard: %v, want ErrClosed", err)
	}
}

// Publish and Close race: either Publish completes first or it answers
// ErrClosed; neither hangs.
func TestPublishRacesClose(t *testing.T) {
	for i := range 50 {
		dir := t.TempDir()
		s, err := Open(dir, ShardID{Index: "idx", Shard: i}, Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.StartStaging("rec")
		if err != nil {
			t.Fatal(err)
		}
		commit := s.Metadata().Commit
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := st.Publish(nil, commit); err != nil && !errors.Is(err, ErrClosed) {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
	}
}

// CloseIfIdle leaves a shard something uses open, and closes it once
// nothing does; a closed shard reopens with everything it held.
func TestCloseIfIdle(t *testing.T) {
	dir := t.TempDir()
	s := openNew(t, dir, Options{})
	mustIndex(t, s, 10, 0)
	ref, err := s.AcquireCommit()
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.StartStaging("rec-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Leases().Add("peer", 5, "n2"); err != nil {
		t.Fatal(err)
	}
	s.RefuseWrites("rec-2")
	busy := []struct {
		what string
		end  func() error
	}{
		{"a pinned commit", ref.Release},
		{"a staging", st.Abandon},
		{"a retention lease", func() error { return s.Leases().Remove("peer") }},
		{"a refusal of writes", func() error { s.ResumeWrites("rec-2"); return nil }},
	}
	for _, b := range busy {
		if closed, err := s.CloseIfIdle(0); closed || err != nil {
			t.Fatalf("CloseIfIdle with %s in use: closed %v, %v", b.what, closed, err)
		}
		if err := b.end(); err != nil {
			t.Fatal(err)
		}
	}
	if closed, err := s.CloseIfIdle(0); !closed || err != nil {
		t.Fatalf("CloseIfIdle of an idle shard: closed %v, %v", closed, err)
	}
	if _, err := s.Index(ctx, "k", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("write to a shard closed idle: %v, want ErrClosed", err)
	}
	r, err := Open(dir, s.ID(), Options{})
	if err != nil {
		t.Fatalf("reopen after CloseIfIdle: %v", err)
	}
	mustIndex(t, r, 1, 10)
	if closed, _ := r.CloseIfIdle(time.Hour); closed {
		t.Fatal("CloseIfIdle closed a shard written to less than its minIdle ago")
	}
	defer r.Close()
	if got := r.Stats().Seq.MaxSeqNo; got != 10 {
		t.Fatalf("reopened with max seqno %d, want 10", got)
	}
	u, err := Open(dir, ShardID{Index: "idx", Shard: 1}, Options{Create: true, Uncommitted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if closed, _ := u.CloseIfIdle(0); closed {
		t.Fatal("CloseIfIdle closed a shard without a commit (a recovery's new target)")
	}
}

// A staging an earlier process kept (Options.KeepStaging) keeps the
// shard open until a Sweep removes it: the node's cleanup sweeps only the
// shards open.
func TestCloseIfIdleLeavesKeptStagingForSweep(t *testing.T) {
	dir := t.TempDir()
	s := openNew(t, dir, Options{KeepStaging: true})
	if _, err := s.StartStaging("rec-gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // a crash would leave it too
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Path(), stagingDir, "rec-gone"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir, s.ID(), Options{KeepStaging: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if closed, _ := r.CloseIfIdle(0); closed {
		t.Fatal("CloseIfIdle closed a shard holding a staging left for the sweep")
	}
	if res, err := r.Sweep(nil); err != nil || len(res.Staging) != 1 {
		t.Fatalf("Sweep = %+v, %v", res, err)
	}
	if closed, _ := r.CloseIfIdle(0); !closed {
		t.Fatal("CloseIfIdle left the shard open after the sweep")
	}
}
