package docapi_test

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine/docapi"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/shardstore"
)

// TestWritesRefusedDuringARecovery: while a recovery has the engine refuse
// writes to a shard, the document API refuses its primary writes, merges
// and promotions with FailedPrecondition and RECOVERY_RUNNING, takes
// replicated ops and reads, and writes again once the refusal is lifted.
// No callback into recoverd is needed: the engine's refusal answers.
func TestWritesRefusedDuringARecovery(t *testing.T) {
	ctx := context.Background()
	reg := embedded.NewRegistry(t.TempDir(), shardstore.Options{}, slog.New(slog.DiscardHandler))
	defer reg.CloseAll()
	svc := docapi.New(reg)
	id := &pb.ShardId{Index: "docs", Shard: 0}
	if _, err := svc.CreateShard(ctx, &pb.CreateShardRequest{Shard: id}); err != nil {
		t.Fatal(err)
	}
	idx, err := svc.Index(ctx, &pb.IndexRequest{Shard: id, Docs: []*pb.Doc{{Key: "a", Value: []byte("1")}}})
	if err != nil {
		t.Fatal(err)
	}
	reg.RefuseWrites(shardstore.ShardID{Index: "docs"}, "rec-1")
	refused := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.FailedPrecondition || rpcerr.Reason(err) != pb.ErrorReason_RECOVERY_RUNNING {
			t.Errorf("%s during a recovery: %v, want FailedPrecondition RECOVERY_RUNNING", what, err)
		}
	}
	_, err = svc.Index(ctx, &pb.IndexRequest{Shard: id, Docs: []*pb.Doc{{Key: "b", Value: []byte("2")}}})
	refused("index", err)
	_, err = svc.Delete(ctx, &pb.DeleteRequest{Shard: id, Keys: []string{"a"}})
	refused("delete", err)
	_, err = svc.Merge(ctx, &pb.MergeRequest{Shard: id})
	refused("merge", err)
	_, err = svc.Promote(ctx, &pb.PromoteRequest{Shard: id})
	refused("promote", err)
	if _, err := svc.Get(ctx, &pb.GetRequest{Shard: id, Key: "a"}); err != nil {
		t.Errorf("get during a recovery: %v", err)
	}
	next := idx.Ops[0]
	next.Seqno++
	next.Key = "replicated"
	if _, err := svc.Apply(ctx, &pb.ApplyRequest{Shard: id, Ops: []*pb.Op{next}}); err != nil {
		t.Errorf("a replicated op during a recovery: %v", err)
	}
	reg.ResumeWrites(shardstore.ShardID{Index: "docs"}, "rec-1")
	if _, err := svc.Index(ctx, &pb.IndexRequest{Shard: id, Docs: []*pb.Doc{{Key: "b", Value: []byte("2")}}}); err != nil {
		t.Errorf("index once the recovery ended: %v", err)
	}
}
