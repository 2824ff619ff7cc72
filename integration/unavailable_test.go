package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/shardstore"
)

// TestDescriptorLimitLeavesShardsInPlace starts a real recoverd with a
// small RLIMIT_NOFILE over more shards than it could hold open at once.
// It holds only those in use (issue 16): every shard is listed open and
// answers with its content, none is moved aside or changed, and a restart
// with a normal limit opens them all with their content.
func TestDescriptorLimitLeavesShardsInPlace(t *testing.T) {
	data := t.TempDir()
	const count = 200 // open at once, 200 shards would take more than 256 descriptors
	want := map[string]string{}
	for i := range count {
		id := shardstore.ShardID{Index: fmt.Sprintf("ix%03d", i), Shard: 0}
		s, err := shardstore.Open(data, id, shardstore.Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.IndexBatch(context.Background(), []shardstore.Doc{{Key: "k", Value: []byte(id.Index)}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if want[id.Index], err = s.Digest(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	n := wrap(testutil.StartNode(t, testutil.NodeOptions{Name: "fdlimit", Data: data, MaxOpenFiles: 256}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log tail:\n%s", n.LogTail(40))
		}
	})
	// The node holds only the shards in use: every one is listed open,
	// and answers with its content, under a limit that could not hold
	// them all open at once.
	for _, s := range mustv(n.shard.ListShards(ctxT(t), &pb.ListShardsRequest{}))(t).Shards {
		if s.State != pb.ShardState_SHARD_STATE_OPEN {
			t.Fatalf("shard %s is %v under the descriptor limit: %s", s.Shard.Index, s.State, s.StateReason)
		}
		if d := mustv(n.shard.Digest(ctxT(t), &pb.DigestRequest{Shard: s.Shard}))(t); d.Digest != want[s.Shard.Index] {
			t.Fatalf("shard %s changed", s.Shard.Index)
		}
	}
	m := scrape(t, n)
	if m[series("recoverd_shards", "state", "unavailable")] != 0 || m[series("recoverd_shards", "state", "corrupt")] != 0 ||
		m[series("recoverd_shards", "state", "open")] != count {
		t.Errorf("recoverd_shards: %v open, %v unavailable, %v corrupt; want all %d open", m[series("recoverd_shards", "state", "open")],
			m[series("recoverd_shards", "state", "unavailable")], m[series("recoverd_shards", "state", "corrupt")], count)
	}
	if strings.Contains(n.LogTail(1000), "too many open files") {
		t.Error("the node ran out of descriptors")
	}
	n.Stop()
	if _, err := os.Stat(filepath.Join(data, "quarantine")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("shards were moved to quarantine")
	}

	// Descriptors are back: every shard opens, unchanged.
	n = wrap(testutil.StartNode(t, testutil.NodeOptions{Name: "fdlimit-restarted", Data: data}))
	list := mustv(n.shard.ListShards(ctxT(t), &pb.ListShardsRequest{}))(t).Shards
	if len(list) != count {
		t.Fatalf("%d shards listed after the restart, want %d", len(list), count)
	}
	for _, s := range list {
		if s.State != pb.ShardState_SHARD_STATE_OPEN {
			t.Fatalf("shard %s is %v after the restart: %s", s.Shard.Index, s.State, s.StateReason)
		}
		d := mustv(n.shard.Digest(ctxT(t), &pb.DigestRequest{Shard: s.Shard}))(t)
		if d.Digest != want[s.Shard.Index] {
			t.Fatalf("shard %s changed", s.Shard.Index)
		}
	}
}
