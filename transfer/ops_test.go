package transfer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// opsSource has 1000 ops (seqnos 0..999) retained in its op log, half of
// them flushed.
func opsSource(t *testing.T) *shardstore.Shard {
	t.Helper()
	s := newSourceShard(t, t.TempDir(), sourceSpec{docs: 600, valueSize: 100, opts: shardstore.Options{RetainOps: 1 << 20}})
	ctx := context.Background()
	for i := range 400 {
		if i%7 == 0 {
			if _, err := s.Delete(ctx, fmt.Sprintf("doc-%08d", i)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := s.Index(ctx, fmt.Sprintf("doc-%08d", i), []byte("again")); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func collectOps(t *testing.T, e *env, r seqno.Range, opts OpsOptions) ([]shardstore.Op, OpsResult, error) {
	t.Helper()
	var got []shardstore.Op
	res, err := FetchOps(ctxT(t), e.client, testShard, r, e.src.Stats().HistoryUUID, func(ops []shardstore.Op) error {
		got = append(got, ops...)
		return nil
	}, opts)
	return got, res, err
}

func wantOps(t *testing.T, s *shardstore.Shard, r seqno.Range) []shardstore.Op {
	t.Helper()
	var want []shardstore.Op
	if err := s.ReadOps(r, func(op shardstore.Op) error { want = append(want, op); return nil }); err != nil {
		t.Fatal(err)
	}
	return want
}

func sameOps(t *testing.T, got, want []shardstore.Op) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d ops, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.SeqNo != w.SeqNo || g.Key != w.Key || g.Kind != w.Kind || g.PrimaryTerm != w.PrimaryTerm || string(g.Value) != string(w.Value) {
			t.Fatalf("op %d: got %+v, want %+v", i, g, w)
		}
	}
}

// TestFetchOpsInOrder runs with packed batches (the default) and with a
// message per op, the format of sources that do not know packed_ops.
func TestFetchOpsInOrder(t *testing.T) {
	for _, unpacked := range []bool{false, true} {
		t.Run(fmt.Sprintf("unpacked=%v", unpacked), func(t *testing.T) { testFetchOpsInOrder(t, unpacked) })
	}
}

func testFetchOpsInOrder(t *testing.T, unpacked bool) {
	src := opsSource(t)
	e := startEnv(t, src, envOpts{})
	for _, r := range []seqno.Range{{From: 0, To: 999}, {From: 250, To: 700}, {From: 999, To: 999}, {From: 5, To: 4}} {
		got, res, err := collectOps(t, e, r, OpsOptions{BatchSize: 64, Unpacked: unpacked})
		if err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		sameOps(t, got, wantOps(t, src, r))
		for i := 1; i < len(got); i++ {
			if got[i].SeqNo <= got[i-1].SeqNo {
				t.Fatalf("%v: seqno %v after %v", r, got[i].SeqNo, got[i-1].SeqNo)
			}
		}
		if want := (r.Len() + 63) / 64; res.Batches != want {
			t.Errorf("%v: %d batches, want %d", r, res.Batches, want)
		}
	}
}

func TestFetchOpsResumesAfterCut(t *testing.T) {
	src := opsSource(t)
	cut := hookSends("FetchOps", func(call, n int, _ any) error {
		if call == 1 && n > 2 {
			return status.Error(codes.Unavailable, "test: stream cut")
		}
		return nil
	})
	e := startEnv(t, src, envOpts{server: []grpc.ServerOption{cut}})
	var resumedAt []seqno.SeqNo
	r := seqno.Range{From: 100, To: 999}
	got, res, err := collectOps(t, e, r, OpsOptions{BatchSize: 100, Retry: retry.Options{Initial: time.Millisecond},
		OnResume: func(next seqno.SeqNo, _ error) { resumedAt = append(resumedAt, next) }})
	if err != nil {
		t.Fatal(err)
	}
	sameOps(t, got, wantOps(t, src, r))
	if res.Resumes != 1 || len(resumedAt) != 1 || resumedAt[0] != 300 || res.Last != 999 {
		t.Fatalf("resumes %d at %v, last %v", res.Resumes, resumedAt, res.Last)
	}
	if sent := e.srv.Stats().Ops; sent != r.Len() {
		t.Fatalf("server sent %d ops for a range of %d: ops were sent twice", sent, r.Len())
	}
}

func TestFetchOpsErrors(t *testing.T) {
	src := opsSource(t)
	e := startEnv(t, src, envOpts{})
	history := src.Stats().HistoryUUID
	fn := func([]shardstore.Op) error { return nil }
	ctx := ctxT(t)

	_, err := FetchOps(ctx, e.client, testShard, seqno.Range{From: 0, To: 10}, "another-history", fn, OpsOptions{})
	if !errors.Is(err, ErrHistoryMismatch) || status.Code(err) != codes.FailedPrecondition || rpcerr.Reason(err) != pb.ErrorReason_HISTORY_MISMATCH {
		t.Fatalf("history mismatch: %v", err)
	}
	_, err = FetchOps(ctx, e.client, testShard, seqno.Range{From: 990, To: 5000}, history, fn, OpsOptions{})
	if status.Code(err) != codes.OutOfRange {
		t.Fatalf("range past max seqno: %v", err)
	}
	boom := errors.New("apply failed")
	_, err = FetchOps(ctx, e.client, testShard, seqno.Range{From: 0, To: 10}, history, func([]shardstore.Op) error { return boom }, OpsOptions{})
	if err != boom {
		t.Fatalf("fn error: %v", err)
	}
	// Raw requests the client helper would refuse before sending.
	for _, tc := range []struct {
		req  *pb.FetchOpsRequest
		code codes.Code
	}{
		{&pb.FetchOpsRequest{Shard: pbShard(), Range: &pb.SeqNoRange{From: 10, To: 5}, ExpectedHistoryUuid: history}, codes.InvalidArgument},
		{&pb.FetchOpsRequest{Shard: pbShard(), Range: &pb.SeqNoRange{From: -1, To: 5}, ExpectedHistoryUuid: history}, codes.InvalidArgument},
		{&pb.FetchOpsRequest{Shard: pbShard(), ExpectedHistoryUuid: history}, codes.InvalidArgument},
		{&pb.FetchOpsRequest{Shard: pbShard(), Range: &pb.SeqNoRange{From: 0, To: 5}}, codes.InvalidArgument},
		{&pb.FetchOpsRequest{Shard: &pb.ShardId{Index: "nope", Shard: 0}, Range: &pb.SeqNoRange{From: 0, To: 5}, ExpectedHistoryUuid: history}, codes.NotFound},
	} {
		st, err := e.client.FetchOps(ctx, tc.req)
		if err == nil {
			_, err = st.Recv()
		}
		if status.Code(err) != tc.code {
			t.Errorf("%v: got %v, want %v", tc.req, err, tc.code)
		}
	}

	// Flushing without retention drops the op log: ops are compacted.
	src2 := newSourceShard(t, t.TempDir(), sourceSpec{docs: 100, valueSize: 10})
	e2 := startEnv(t, src2, envOpts{})
	_, err = FetchOps(ctx, e2.client, testShard, seqno.Range{From: 0, To: 99}, src2.Stats().HistoryUUID, fn, OpsOptions{})
	if !errors.Is(err, seqno.ErrCompacted) || status.Code(err) != codes.FailedPrecondition || retry.IsTransient(err) {
		t.Fatalf("compacted ops: %v", err)
	}
}

func TestLeases(t *testing.T) {
	var nowNS atomic.Int64
	nowNS.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, nowNS.Load()).UTC() }
	advance := func(d time.Duration) time.Time { nowNS.Add(int64(d)); return clock() }
	now := clock()
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 100, valueSize: 10, opts: shardstore.Options{RetainOps: 50, LeaseTTL: time.Minute, Now: clock}})
	e := startEnv(t, src, envOpts{})
	ctx := ctxT(t)
	floor := src.RetainedOps().From

	l, err := AcquireLease(ctx, e.client, testShard, "rec-1", floor, "recovery/rec-1@test")
	if err != nil {
		t.Fatal(err)
	}
	if l.ID != "rec-1" || l.RetainingSeqNo != floor || l.TTL != time.Minute || !l.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("lease %+v", l)
	}
	if _, err := AcquireLease(ctx, e.client, testShard, "rec-1", floor, "x"); !errors.Is(err, seqno.ErrLeaseExists) || status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second acquire: %v", err)
	}
	if _, err := AcquireLease(ctx, e.client, testShard, "rec-2", floor-1, "x"); !errors.Is(err, seqno.ErrCompacted) || status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("acquire below the floor: %v", err)
	}
	info, err := GetShardInfo(ctx, e.client, testShard)
	if err != nil || len(info.Leases) != 1 || info.Leases[0].ID != "rec-1" {
		t.Fatalf("info leases %+v, %v", info.Leases, err)
	}

	now = advance(30 * time.Second)
	l, err = RenewLease(ctx, e.client, testShard, "rec-1", floor+10)
	if err != nil || l.RetainingSeqNo != floor+10 || !l.Timestamp.Equal(now) {
		t.Fatalf("renew: %+v, %v", l, err)
	}
	l, err = RenewLease(ctx, e.client, testShard, "rec-1", seqno.Unassigned)
	if err != nil || l.RetainingSeqNo != floor+10 {
		t.Fatalf("renew keeping the seqno: %+v, %v", l, err)
	}
	if _, err := RenewLease(ctx, e.client, testShard, "rec-1", floor); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("renew moving back: %v", err)
	}

	advance(2 * time.Minute) // past the TTL
	_, err = RenewLease(ctx, e.client, testShard, "rec-1", seqno.Unassigned)
	if !errors.Is(err, seqno.ErrLeaseLost) || status.Code(err) != codes.NotFound || rpcerr.Reason(err) != pb.ErrorReason_LEASE_LOST || retry.IsTransient(err) {
		t.Fatalf("renew after expiry: %v", err)
	}
	if _, err := RenewLease(ctx, e.client, testShard, "never-held", 5); !errors.Is(err, seqno.ErrLeaseLost) {
		t.Fatalf("renew unknown: %v", err)
	}

	if _, err := AcquireLease(ctx, e.client, testShard, "rec-3", floor, "x"); err != nil {
		t.Fatal(err)
	}
	if err := ReleaseLease(ctx, e.client, testShard, "rec-3"); err != nil {
		t.Fatal(err)
	}
	if err := ReleaseLease(ctx, e.client, testShard, "rec-3"); err != nil {
		t.Fatalf("release twice: %v", err)
	}
	if len(src.Leases().List()) != 0 {
		t.Fatalf("leases left: %+v", src.Leases().List())
	}
}

// TestFetchOpsCarriesNoOpsAndTerms: the no-ops a promotion filled its gaps
// with, and every op's term, go through the op stream, and a replica that
// applies the stream reaches the primary's checkpoint and content.
func TestFetchOpsCarriesNoOpsAndTerms(t *testing.T) {
	ctx := context.Background()
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 10, valueSize: 20, opts: shardstore.Options{RetainOps: 1 << 20}})
	var old []shardstore.Op
	for i := range 10 {
		old = append(old, shardstore.Op{Key: fmt.Sprintf("old-%d", i), SeqNo: seqno.SeqNo(10 + 2*i), PrimaryTerm: 1, Value: []byte("v")})
	}
	if err := src.Apply(ctx, old); err != nil { // seqnos 10, 12, .. 28: nine holes
		t.Fatal(err)
	}
	if err := src.Promote(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Index(ctx, "new", []byte("term 2")); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, src, envOpts{})
	r := seqno.Range{From: 0, To: 29}
	got, _, err := collectOps(t, e, r, OpsOptions{BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	sameOps(t, got, wantOps(t, src, r))
	var noops int
	for _, op := range got {
		if op.Kind == shardstore.OpNoOp {
			noops++
			if op.PrimaryTerm != 2 || op.Key != "" || op.SeqNo%2 == 0 {
				t.Fatalf("no-op %+v: want term 2, no key, at an odd seqno", op)
			}
		}
	}
	if noops != 9 {
		t.Fatalf("%d no-ops in the stream, want the 9 holes", noops)
	}
	replica, err := shardstore.Open(t.TempDir(), testShard, shardstore.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	if err := replica.Apply(ctx, got); err != nil {
		t.Fatal(err)
	}
	if st, want := replica.Stats().Seq, src.Stats().Seq; st.LocalCheckpoint != want.LocalCheckpoint || st.MaxSeqNo != want.MaxSeqNo {
		t.Fatalf("replica at %v, primary at %v", st, want)
	}
	d1, err1 := replica.Digest(ctx)
	d2, err2 := src.Digest(ctx)
	if d1 != d2 || err1 != nil || err2 != nil {
		t.Fatalf("the replica differs from the primary: %v, %v", err1, err2)
	}
}
