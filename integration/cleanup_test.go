package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/shardstore"
)

// The periodic cleanup of a real node, sweeping every 50ms while a
// throttled recovery stages files onto it: it removes the leftovers planted
// beside the recovery and never the recovery's own staging, which
// publishes a copy equal to its source.
func TestCleanupRacingRunningRecovery(t *testing.T) {
	n1 := testutil.StartNode(t, testutil.NodeOptions{Name: "n1"})
	n2 := testutil.StartNode(t, testutil.NodeOptions{Name: "n2", Args: []string{"--cleanup-interval", "50ms", "--throttle", "4MB"}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("n2 log:\n%s", n2.LogTail(60))
		}
	})
	shard := &pb.ShardId{Index: "swept", Shard: 0}
	id := shardstore.ShardID{Index: "swept", Shard: 0}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := pb.NewShardServiceClient(n1.Dial())
	if _, err := src.CreateShard(ctx, &pb.CreateShardRequest{Shard: shard}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for seg := range 4 { // about 16 MB: 4s at the target's 4 MB/s
		docs := make([]*pb.Doc, 4000)
		for i := range docs {
			v := make([]byte, 1024)
			for j := range v {
				v[j] = byte(r.Uint32())
			}
			docs[i] = &pb.Doc{Key: fmt.Sprintf("doc-%d-%05d", seg, i), Value: v}
		}
		for i := 0; i < len(docs); i += 1000 {
			if _, err := src.Index(ctx, &pb.IndexRequest{Shard: shard, Docs: docs[i : i+1000]}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := src.Flush(ctx, &pb.FlushRequest{Shard: shard}); err != nil {
			t.Fatal(err)
		}
	}

	runsBefore := secMetric(t, n2, "recoverd_cleanup_runs_total")
	rec := pb.NewRecoveryServiceClient(n2.Dial())
	resp, err := rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: shard, SourceAddress: n1.PeerAddr})
	if err != nil {
		t.Fatal(err)
	}
	rid := resp.Recovery.Id
	shardDir := shardstore.Dir(n2.Data, id)
	staging := filepath.Join(shardDir, "staging", rid)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if entries, _ := os.ReadDir(staging); len(entries) > 0 {
			break // files are being staged
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recovery never staged a file in %s", staging)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Leftovers beside the running recovery: a dead recovery's staging and
	// an old temp file of an interrupted commit.
	dead := filepath.Join(shardDir, "staging", "r-dead")
	if err := os.MkdirAll(dead, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dead, "seg_00000001_dead"), []byte("partial"), 0o644)
	temp := filepath.Join(shardDir, ".tmp-commit_99-1")
	os.WriteFile(temp, []byte("half"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(temp, old, old)

	stream, err := rec.WatchRecovery(ctx, &pb.WatchRecoveryRequest{Id: rid, MinInterval: durationpb.New(100 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	var last *pb.Recovery
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = m.Recovery
	}
	if last.GetStage() != pb.Stage_STAGE_DONE || !last.GetResult().GetMatch() {
		t.Fatalf("recovery raced by cleanup ended %v: %s", last.GetStage(), last.GetError())
	}
	runs := secMetric(t, n2, "recoverd_cleanup_runs_total") - runsBefore
	if runs < 10 {
		t.Fatalf("only %v sweeps ran during the recovery", runs)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, e1 := os.Stat(dead)
		_, e2 := os.Stat(temp)
		if errors.Is(e1, os.ErrNotExist) && errors.Is(e2, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leftovers not swept: %v %v", e1, e2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := secMetric(t, n2, `recoverd_cleanup_removals_total{kind="staging"}`); v != 1 {
		t.Errorf("staging removals %v, want 1 (r-dead only)", v)
	}
	if v := secMetric(t, n2, `recoverd_cleanup_removals_total{kind="temp"}`); v != 1 {
		t.Errorf("temp removals %v, want 1", v)
	}
	logs, err := os.ReadFile(n2.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(logs), "\n") {
		if strings.Contains(line, "cleanup removed") && strings.Contains(line, rid) {
			t.Errorf("cleanup removed something of the running recovery: %s", line)
		}
	}
	if !strings.Contains(string(logs), "name=r-dead") {
		t.Error("the removal of r-dead is not logged")
	}

	dst := pb.NewShardServiceClient(n2.Dial())
	d1, err := src.Digest(ctx, &pb.DigestRequest{Shard: shard})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := dst.Digest(ctx, &pb.DigestRequest{Shard: shard})
	if err != nil {
		t.Fatal(err)
	}
	if d1.Digest != d2.Digest || d1.Seqno.MaxSeqno != d2.Seqno.MaxSeqno || d1.HistoryUuid != d2.HistoryUuid {
		t.Fatalf("copies differ: %v vs %v", d1, d2)
	}
}
