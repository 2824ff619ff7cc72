package docapi_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine/docapi"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/shardstore"
)

// newShardOnDisk creates a shard with a few docs and a commit, closed, and
// returns the path of its commit file.
func newShardOnDisk(t *testing.T, data string, id shardstore.ShardID) string {
	t.Helper()
	s, err := shardstore.Open(data, id, shardstore.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.IndexBatch(context.Background(), []shardstore.Doc{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	commits, _ := filepath.Glob(filepath.Join(s.Path(), "commit_*"))
	if len(commits) != 1 {
		t.Fatalf("commits: %v", commits)
	}
	return commits[0]
}

func listed(t *testing.T, r *embedded.Registry) map[string]*pb.ShardStats {
	t.Helper()
	resp, err := docapi.New(r).ListShards(context.Background(), &pb.ListShardsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*pb.ShardStats{}
	for _, s := range resp.Shards {
		out[s.Shard.Index] = s
	}
	return out
}

func TestUnreadableShardStaysInPlaceAndOpensLater(t *testing.T) {
	data := t.TempDir()
	id := shardstore.ShardID{Index: "unreadable", Shard: 0}
	commit := newShardOnDisk(t, data, id)
	// A directory in place of the commit: reading it fails with EISDIR, a
	// read error that says nothing about the data (as EIO or EMFILE).
	if err := os.Rename(commit, commit+".aside"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(commit, 0o755); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	r := embedded.NewRegistry(data, shardstore.Options{}, slog.New(slog.NewTextHandler(logs, nil)))
	defer r.CloseAll()
	if err := r.OpenAll(); err != nil {
		t.Fatal(err)
	}
	if st := listed(t, r)["unreadable"]; st == nil || st.State != pb.ShardState_SHARD_STATE_UNAVAILABLE || !strings.Contains(st.StateReason, "is a directory") {
		t.Fatalf("ListShards reports %v, want the shard UNAVAILABLE with its read error", st)
	}
	if n := r.Count("unavailable"); n != 1 {
		t.Fatalf("%d shards counted unavailable, want 1", n)
	}
	if !strings.Contains(logs.String(), "cannot be read now") {
		t.Errorf("no log line says the shard is unavailable:\n%s", logs)
	}

	// A recovery onto the node must not move it aside and start afresh.
	if _, unreadable, err := r.OpenTarget(id); err == nil || !errors.Is(err, shardstore.ErrUnavailable) || unreadable != "" {
		t.Fatalf("OpenTarget = %q, %v: want ErrUnavailable and nothing moved", unreadable, err)
	}
	if _, err := os.Stat(filepath.Join(data, "quarantine")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a shard that could not be read was moved to quarantine")
	}
	if _, err := os.Stat(commit + ".aside"); err != nil {
		t.Fatalf("the shard's commit is gone: %v", err)
	}

	// Once it reads again, its next access opens it, with its data.
	os.Remove(commit)
	if err := os.Rename(commit+".aside", commit); err != nil {
		t.Fatal(err)
	}
	s, err := r.Shard(id)
	if err != nil {
		t.Fatalf("the shard does not open on its next access: %v", err)
	}
	if _, _, ok, _ := s.Get("b"); !ok {
		t.Fatal("the shard lost its documents")
	}
	if st := listed(t, r)["unreadable"]; st.State != pb.ShardState_SHARD_STATE_OPEN || r.Count("unavailable") != 0 {
		t.Fatalf("after it opened: %v, %d unavailable", st, r.Count("unavailable"))
	}
}

func TestDamagedShardIsMovedAsideByARecovery(t *testing.T) {
	data := t.TempDir()
	id := shardstore.ShardID{Index: "damaged", Shard: 0}
	commit := newShardOnDisk(t, data, id)
	b, _ := os.ReadFile(commit)
	b[len(b)/2] ^= 0xff
	os.WriteFile(commit, b, 0o644)
	r := embedded.NewRegistry(data, shardstore.Options{}, slog.New(slog.DiscardHandler))
	defer r.CloseAll()
	if err := r.OpenAll(); err != nil {
		t.Fatal(err)
	}
	if st := listed(t, r)["damaged"]; st == nil || st.State != pb.ShardState_SHARD_STATE_CORRUPT {
		t.Fatalf("ListShards reports %v, want CORRUPT", st)
	}
	s, unreadable, err := r.OpenTarget(id)
	if err != nil || unreadable == "" {
		t.Fatalf("OpenTarget = %q, %v: want the damaged shard moved aside", unreadable, err)
	}
	if st := s.Stats(); st.Seq.MaxSeqNo != -1 {
		t.Fatalf("the new shard is not empty: %+v", st)
	}
	moved, _ := filepath.Glob(filepath.Join(data, "quarantine", "damaged.0.*"))
	if len(moved) != 1 {
		t.Fatalf("quarantine holds %v", moved)
	}
	if r.Count("corrupt") != 0 {
		t.Fatal("the damaged shard is still counted after it was moved aside")
	}
}

// syncBuf is a log sink safe for concurrent writers.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
