package shardstore

import "testing"

// TestReplicaRole: a copy is a replica once it applies a primary's ops,
// and a primary again once it writes as one or is promoted; a new copy is
// taken for a primary. The snapshot policy reads it (primaries only).
func TestReplicaRole(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	if s.Replica() {
		t.Fatal("a new copy is a replica")
	}
	if err := s.Apply(ctx, termOps(1, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if !s.Replica() {
		t.Fatal("a copy that applied a primary's ops is not a replica")
	}
	if err := s.Promote(); err != nil {
		t.Fatal(err)
	}
	if s.Replica() {
		t.Fatal("a promoted copy is still a replica")
	}
	if err := s.Apply(ctx, termOps(2, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Index(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if s.Replica() {
		t.Fatal("a copy that took a primary write is a replica")
	}
}
