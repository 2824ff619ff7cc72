package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/shardstore"
)

// TestDescriptorLimitLeavesShardsInPlace starts a real recoverd with a
// small RLIMIT_NOFILE over more shards than it can hold open. The shards
// it cannot open are reported unavailable (ListShards, metric, log), none
// is moved aside or changed, a shard's next access opens it once
// descriptors are free, and a restart with a normal limit opens them all
// with their content.
func TestDescriptorLimitLeavesShardsInPlace(t *testing.T) {
	data := t.TempDir()
	const count = 150 // an open shard holds 2 descriptors: far more than 128 allows
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

	n := wrap(testutil.StartNode(t, testutil.NodeOptions{Name: "fdlimit", Data: data, MaxOpenFiles: 128}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log tail:\n%s", n.LogTail(40))
		}
	})
	byState := map[pb.ShardState][]*pb.ShardStats{}
	for _, s := range mustv(n.shard.ListShards(ctxT(t), &pb.ListShardsRequest{}))(t).Shards {
		byState[s.State] = append(byState[s.State], s)
	}
	unavailable := byState[pb.ShardState_SHARD_STATE_UNAVAILABLE]
	if len(unavailable) == 0 || len(byState[pb.ShardState_SHARD_STATE_OPEN])+len(unavailable) != count || len(byState[pb.ShardState_SHARD_STATE_CORRUPT]) > 0 {
		t.Fatalf("ListShards: %d open, %d unavailable, %d corrupt; want every one of %d shards open or unavailable, some unavailable",
			len(byState[pb.ShardState_SHARD_STATE_OPEN]), len(unavailable), len(byState[pb.ShardState_SHARD_STATE_CORRUPT]), count)
	}
	if !strings.Contains(unavailable[0].StateReason, "too many open files") {
		t.Errorf("unavailable shard's reason %q does not say why", unavailable[0].StateReason)
	}
	m := scrape(t, n)
	if got := m[series("recoverd_shards", "state", "unavailable")]; got != float64(len(unavailable)) {
		t.Errorf("recoverd_shards{state=unavailable} = %v, want %d", got, len(unavailable))
	}
	if m[series("recoverd_shards", "state", "corrupt")] != 0 {
		t.Error("shards counted corrupt")
	}
	if !strings.Contains(n.LogTail(1000), "cannot be read now") {
		t.Error("no log line says shards are unavailable")
	}

	// The next access of an unavailable shard opens it again: it answers,
	// or says Unavailable while descriptors are still short.
	retry := unavailable[0].Shard
	_, err := n.shard.Stats(ctxT(t), &pb.StatsRequest{Shard: retry})
	if err != nil && status.Code(err) != codes.Unavailable {
		t.Fatalf("Stats of an unavailable shard = %v, want it opened or Unavailable", err)
	}
	if err == nil {
		for _, s := range mustv(n.shard.ListShards(ctxT(t), &pb.ListShardsRequest{}))(t).Shards {
			if s.Shard.Index == retry.Index && s.State != pb.ShardState_SHARD_STATE_OPEN {
				t.Fatalf("shard %s answered Stats but is listed %v", retry.Index, s.State)
			}
		}
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
