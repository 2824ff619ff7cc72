package recovery

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// A target that holds ops of the source's history past the source's max
// seqno is not overwritten: StartRecovery (and ExplainPlan) answer
// FailedPrecondition naming both max seqnos, nothing is registered and the
// target keeps its ops. With allow_data_loss the recovery runs and the
// copy equals the source.
func TestTargetAheadOfItsSourceIsRefused(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, shardstore.Options{RetainOps: 1000}, Config{})
	src := e.source()
	write(t, src, 100, 0, 64)
	flush(t, src)
	requireDone(t, e.run(StartRequest{ID: "first"}))
	// The target goes on alone: ops 100..119 of the same history and
	// term, which the source never had.
	tgt := e.target()
	ops := make([]engine.Op, 20)
	for i := range ops {
		ops[i] = engine.Op{Key: fmt.Sprintf("ahead-%02d", i), SeqNo: seqno.SeqNo(100 + i), PrimaryTerm: tgt.Stats().PrimaryTerm,
			Kind: shardstore.OpIndex, Value: []byte("only on the target")}
	}
	if err := tgt.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	flush(t, tgt)
	before := digest(t, tgt)

	svc := NewService(e.m)
	req := &pb.StartRecoveryRequest{Shard: pbconv.ShardID(shardID), SourceAddress: e.addr, RecoveryId: "second"}
	_, err := svc.StartRecovery(ctx, req)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "up to seqno 119") || !strings.Contains(err.Error(), "max seqno 99") {
		t.Fatalf("StartRecovery onto a target ahead of its source: %v, want FailedPrecondition naming seqnos 119 and 99", err)
	}
	if _, err := e.m.Get("second"); err == nil {
		t.Fatal("the refused recovery was registered")
	}
	_, err = svc.ExplainPlan(ctx, &pb.ExplainPlanRequest{Shard: req.Shard, SourceAddress: e.addr})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "max seqno 99") {
		t.Fatalf("ExplainPlan: %v, want FailedPrecondition", err)
	}
	if digest(t, tgt) != before || tgt.Stats().Seq.MaxSeqNo != 119 {
		t.Fatal("the refused recovery changed the target")
	}

	req.Options = &pb.RecoveryOptions{AllowDataLoss: true}
	resp, err := svc.StartRecovery(ctx, req)
	if err != nil {
		t.Fatalf("StartRecovery with allow_data_loss: %v", err)
	}
	if !resp.Recovery.GetOptions().GetAllowDataLoss() {
		t.Fatal("the recovery does not show allow_data_loss")
	}
	r, err := e.m.Get("second")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(time.Minute):
		t.Fatal("recovery did not finish in a minute")
	}
	s, _ := r.State()
	requireDone(t, s)
	if !strings.Contains(strings.Join(s.Plan.Reasons, "\n"), "as the request allows") {
		t.Fatalf("the plan does not say ops are discarded: %v", s.Plan.Reasons)
	}
	if digest(t, tgt) != digest(t, src) {
		t.Fatal("copy differs from the source")
	}
}
