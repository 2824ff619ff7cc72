package shardstore

import (
	"os"
	"testing"
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
