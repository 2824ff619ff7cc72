package recovery

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoverd/recoverd/shardstore"
)

// TestCheckComparesDigestsAtTheCopysSeqno: the source goes on indexing
// (and flushing) through the whole recovery, and during the digest it
// computes for the final check. The check compares the contents at the
// seqno the copy reached, so it matches rather than ending with "the
// source indexed more".
func TestCheckComparesDigestsAtTheCopysSeqno(t *testing.T) {
	var written atomic.Int64
	srcOpts := shardstore.Options{RetainOps: 100000, Failpoint: func(name string) {
		if name != "digest.scan" {
			return
		}
		// The source's digest runs while it takes writes.
		for from, deadline := written.Load(), time.Now().Add(30*time.Second); written.Load() < from+5 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}}
	e := newEnv(t, srcOpts, Config{VerifyDigest: DigestAlways})
	src := e.source()
	write(t, src, 2000, 0, 256)
	flush(t, src)
	write(t, src, 100, 2000, 256)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if _, err := src.Index(context.Background(), "live", []byte{byte(i)}); err != nil {
				t.Error(err)
				return
			}
			written.Add(1)
			if i%50 == 49 {
				if err := src.Flush(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	s := e.run(StartRequest{})
	close(stop)
	<-done
	requireDone(t, s)
	if !contains(s.Result.Detail, "equals the source at seqno") || !contains(s.Result.Detail, "meanwhile") {
		t.Fatalf("check: %s", s.Result.Detail)
	}
}
