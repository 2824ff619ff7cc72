package shardstore

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/recoverd/recoverd/seqno"
)

// An op becomes visible only once its op log fsync returned (staged files
// are fsynced by whoever wrote them: recoverd, internal/staging). The
// fsync errors are injected (Options.Fault): a real disk cannot be made
// to fail on demand.

var errInjectedEIO = &os.PathError{Op: "fsync", Path: "injected", Err: syscall.EIO}

func TestOpLogFsyncErrorLeavesTheOpInvisibleAndUncommitted(t *testing.T) {
	var fail atomic.Bool
	opts := Options{Fault: func(point, _ string) error {
		if point == "oplog.fsync" && fail.Load() {
			return errInjectedEIO
		}
		return nil
	}}
	s := openNew(t, t.TempDir(), opts)
	if _, err := s.Index(ctx, "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	if _, err := s.Index(ctx, "lost", []byte("2")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Index = %v, want the op log's fsync error", err)
	}
	if _, _, ok, _ := s.Get("lost"); ok {
		t.Fatal("an op whose fsync failed is visible")
	}
	fail.Store(false)
	if _, err := s.Index(ctx, "after", []byte("3")); err != nil {
		t.Fatalf("the op log does not take writes after a failed fsync: %v", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	s.Scan(ctx, func(k string, _ []byte, _ seqno.SeqNo) error { keys = append(keys, k); return nil })
	if strings.Join(keys, ",") != "after,before" {
		t.Fatalf("committed keys %v, want after and before only", keys)
	}
	s = reopen(t, s, Options{})
	if _, _, ok, _ := s.Get("lost"); ok {
		t.Fatal("an op whose fsync failed came back at reopen")
	}
	if _, _, ok, _ := s.Get("after"); !ok {
		t.Fatal("an acknowledged op is gone")
	}
}

func TestOpLogFsyncErrorUnderConcurrentWriters(t *testing.T) {
	// Writers share fsyncs (group commit). Whatever an fsync error drops,
	// an op is visible, now and after a reopen, exactly when its write
	// returned without error.
	var (
		fsyncs atomic.Int32
		stop   atomic.Bool
	)
	opts := Options{Fault: func(point, _ string) error {
		if point == "oplog.fsync" && !stop.Load() && fsyncs.Add(1)%7 == 3 {
			return errInjectedEIO
		}
		return nil
	}}
	s := openNew(t, t.TempDir(), opts)
	var (
		wg    sync.WaitGroup
		acked sync.Map
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				key := fmt.Sprintf("w%d-%03d", w, i)
				if _, err := s.Index(ctx, key, []byte(key)); err == nil {
					acked.Store(key, true)
				} else if !errors.Is(err, syscall.EIO) {
					t.Errorf("Index %s: %v", key, err)
				}
			}
		}()
	}
	wg.Wait()
	check := func(s *Shard, when string) {
		failed := 0
		for w := range 8 {
			for i := range 40 {
				key := fmt.Sprintf("w%d-%03d", w, i)
				_, _, found, err := s.Get(key)
				if err != nil {
					t.Fatal(err)
				}
				_, ok := acked.Load(key)
				if found != ok {
					t.Fatalf("%s: %s visible=%v, acknowledged=%v", when, key, found, ok)
				}
				if !ok {
					failed++
				}
			}
		}
		if failed == 0 {
			t.Fatalf("%s: no write failed: the fault was not injected", when)
		}
	}
	check(s, "after the writes")
	stop.Store(true)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	check(reopen(t, s, Options{}), "after a flush and a reopen")
}

func TestPromoteWaitsForAWriteBetweenItsFsyncAndItsApply(t *testing.T) {
	// A write's op is applied after its fsync returned, under the lock
	// again; Promote waits for it (releasing the lock) instead of taking
	// its seqno for a gap, and does not deadlock with it.
	reached, release := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	s := openNew(t, t.TempDir(), Options{RetainOps: 100, Failpoint: func(name string) {
		if name == "write.synced" && armed.CompareAndSwap(true, false) {
			close(reached)
			<-release
		}
	}})
	mustIndex(t, s, 5, 0)
	armed.Store(true)
	wrote := make(chan error, 1)
	go func() {
		_, err := s.Index(ctx, "in-flight", []byte("v"))
		wrote <- err
	}()
	<-reached
	mustIndex(t, s, 1, 100) // a later seqno, done: the one in flight is below the max
	promoted := make(chan error, 1)
	go func() { promoted <- s.Promote() }()
	var promoteErr error
	promoteDone := false
	for waiting := false; !waiting && !promoteDone; { // Promote waits, its lock released (or, wrongly, is done)
		s.mu.Lock()
		waiting = s.promoting > 0
		s.mu.Unlock()
		select {
		case promoteErr = <-promoted:
			promoteDone = true
		case <-time.After(time.Millisecond):
		}
	}
	close(release)
	if !promoteDone {
		select {
		case promoteErr = <-promoted:
		case <-time.After(time.Minute):
			t.Fatal("the write and the promotion deadlocked")
		}
	}
	if promoteErr != nil {
		t.Fatal(promoteErr)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	_, seq, found, err := s.Get("in-flight")
	if err != nil || !found {
		t.Fatalf("the write in flight during the promotion is lost: %v", err)
	}
	err = s.ReadOps(seqno.Range{From: seq, To: seq}, func(op Op) error {
		if op.Kind != OpIndex || op.Key != "in-flight" {
			t.Errorf("seqno %v holds %+v", seq, op)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	records := 0 // a no-op filling the seqno would be a second record
	s.oplog.mu.Lock()
	for _, g := range s.oplog.gens {
		for _, lc := range g.locs {
			if lc.seq == seq {
				records++
			}
		}
	}
	s.oplog.mu.Unlock()
	st := s.Stats()
	if records != 1 || st.Seq.LocalCheckpoint != st.Seq.MaxSeqNo || st.PrimaryTerm != 2 {
		t.Fatalf("after the promotion: %d records for seqno %v, stats %+v", records, seq, st)
	}
}
