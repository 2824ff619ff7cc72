package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
)

// TestSnapshotPolicyCommand asks a live node running the policy: the JSON
// and the table show the shard's last snapshot, its age and the next run;
// a node without a policy is an error (exit 1), not an empty list.
func TestSnapshotPolicyCommand(t *testing.T) {
	n := testutil.StartNode(t, testutil.NodeOptions{Name: "policy", Repo: "file://" + t.TempDir(),
		Args: []string{"--snapshot-interval", "200ms", "--snapshot-jitter", "0"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := pb.NewShardServiceClient(n.Dial()).CreateShard(ctx, &pb.CreateShardRequest{Shard: &pb.ShardId{Index: "logs", Shard: 2}}); err != nil {
		t.Fatal(err)
	}
	conn := []string{"snapshot", "policy", "--addr", n.GRPCAddr, "--insecure"}
	var resp pb.GetSnapshotPolicyResponse
	for {
		out := spMust(t, append(conn, "-o", "json")...)
		if err := protojson.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatalf("not the answer as JSON: %v\n%s", err, out)
		}
		if len(resp.Shards) == 1 && resp.Shards[0].LastSnapshotId != "" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no scheduled snapshot within a minute: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := resp.Policy.Interval.AsDuration(); got != 200*time.Millisecond || resp.Policy.Scope != "primaries" {
		t.Fatalf("policy %v", resp.Policy)
	}
	s := resp.Shards[0]
	if s.Shard.Index != "logs" || s.Shard.Shard != 2 || !s.Primary || s.Age == nil || (s.NextRun == nil && !s.Running) {
		t.Fatalf("shard status %v: want logs/2, primary, an age and a next run", s)
	}
	text := spMust(t, append(conn, "--shard", "logs/2")...)
	for _, want := range []string{"policy: every 200ms", "logs/2", "primary", "LAST SNAPSHOT"} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	if _, err := spRun(t, append(conn, "--shard", "logs")...); !spIsUsage(err) {
		t.Errorf("a bad --shard is %v, want a usage error", err)
	}

	off := testutil.StartNode(t, testutil.NodeOptions{Name: "no-policy", Repo: "file://" + t.TempDir()})
	_, err := spRun(t, "snapshot", "policy", "--addr", off.GRPCAddr, "--insecure")
	if err == nil || !strings.Contains(err.Error(), "runs no snapshot policy") {
		t.Fatalf("a node without a policy answered %v", err)
	}
}
