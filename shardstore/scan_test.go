package shardstore

import (
	"context"
	"errors"
	"testing"

	"github.com/recoverd/recoverd/seqno"
)

// A whole-shard scan stops once its context is done, with the context's
// error, instead of reading the rest of the shard.
func TestScanIsCancelled(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	const docs = 4 * scanCheckEvery
	mustIndex(t, s, docs, 0)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 0
	err := s.Scan(cctx, func(string, []byte, seqno.SeqNo) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n >= 2*scanCheckEvery {
		t.Fatalf("Scan after its cancel: %v, %d of %d documents", err, n, docs)
	}
	n = 0
	if err := s.Scan(ctx, func(string, []byte, seqno.SeqNo) error { n++; return nil }); err != nil || n != docs {
		t.Fatalf("Scan: %v, %d of %d documents", err, n, docs)
	}
}
