package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/shardstore"
)

// TestThousandsOfShardsUnderASmallDescriptorLimit starts a real recoverd
// on 3,000 small shards with RLIMIT_NOFILE at 256: a node that held every
// shard open (2 descriptors each) could open a tenth of them. It becomes
// ready, lists every shard open (none unavailable or corrupt, none moved
// aside), serves each shard it is asked for, and recovers a new shard from
// a peer (issue 16).
func TestThousandsOfShardsUnderASmallDescriptorLimit(t *testing.T) {
	const count = 3000
	data := t.TempDir()
	template := shardstore.ShardID{Index: "tmpl", Shard: 0}
	s, err := shardstore.Open(t.TempDir(), template, shardstore.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	docs := make([]shardstore.Doc, 50)
	for i := range docs {
		docs[i] = shardstore.Doc{Key: fmt.Sprintf("doc-%02d", i), Value: []byte(strings.Repeat("v", 100))}
	}
	if _, err := s.IndexBatch(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	src := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Copies of one shard's tree, written without fsync: thousands of
	// shards in a second.
	for i := range count {
		if err := testutil.CopyTree(src, shardstore.Dir(data, shardstore.ShardID{Index: fmt.Sprintf("ix%02d", i%50), Shard: i / 50})); err != nil {
			t.Fatal(err)
		}
	}

	n := wrap(testutil.StartNode(t, testutil.NodeOptions{Name: "many", Data: data, MaxOpenFiles: 256}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log tail:\n%s", n.LogTail(40))
		}
	})
	list := mustv(n.shard.ListShards(ctxT(t), &pb.ListShardsRequest{}))(t).Shards
	open := 0
	for _, sh := range list {
		if sh.State == pb.ShardState_SHARD_STATE_OPEN && sh.Seqno.GetMaxSeqno() == 49 {
			open++
		}
	}
	if len(list) != count || open != count {
		t.Fatalf("ListShards: %d shards, %d open with their 50 docs; want all %d", len(list), open, count)
	}
	// Every shard answers when asked, one after another: far more than
	// the limit lets a node hold open at once.
	for i := 0; i < count; i += 7 {
		id := &pb.ShardId{Index: fmt.Sprintf("ix%02d", i%50), Shard: uint32(i / 50)}
		st := mustv(n.shard.Stats(ctxT(t), &pb.StatsRequest{Shard: id}))(t)
		if st.Stats.Seqno.GetMaxSeqno() != 49 {
			t.Fatalf("shard %v: %v", id, st.Stats)
		}
	}

	// A recovery onto the node, of a shard it does not hold.
	peer := wrap(testutil.StartNode(t, testutil.NodeOptions{Name: "peer"}))
	mustv(peer.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	idx := make([]*pb.Doc, 200)
	for i := range idx {
		idx[i] = &pb.Doc{Key: fmt.Sprintf("k%03d", i), Value: []byte("value")}
	}
	mustv(peer.shard.Index(ctxT(t), &pb.IndexRequest{Shard: shardID, Docs: idx}))(t)
	mustv(peer.shard.Flush(ctxT(t), &pb.FlushRequest{Shard: shardID}))(t)
	r := recoverOnto(t, n, peer, nil)
	requireDone(t, r)
	requireSameCopy(t, n, peer)

	for _, sh := range mustv(n.shard.ListShards(ctxT(t), &pb.ListShardsRequest{}))(t).Shards {
		if sh.State != pb.ShardState_SHARD_STATE_OPEN {
			t.Fatalf("shard %v is %v: %s", sh.Shard, sh.State, sh.StateReason)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "quarantine")); err == nil {
		t.Fatal("shards were moved to quarantine")
	}
	if logs := n.LogTail(100000); strings.Contains(logs, "too many open files") || strings.Contains(logs, "cannot be read now") {
		t.Fatalf("the node ran short of descriptors:\n%s", n.LogTail(20))
	}
}
