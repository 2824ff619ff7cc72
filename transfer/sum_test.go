package transfer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zeebo/blake3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/internal/staging"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// requireSummed checks that every file of src came with the BLAKE3 sum of
// its bytes on disk, compared on both ends.
func requireSummed(t *testing.T, src *shardstore.Shard, res FetchResult) {
	t.Helper()
	for _, f := range src.Metadata().Files {
		b, err := os.ReadFile(filepath.Join(src.Path(), f.Name))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := res.Summed[f.Name]
		if !ok || got != staging.Sum(blake3.Sum256(b)) {
			t.Fatalf("file %s: summed %v (%x), want the BLAKE3 sum of its bytes", f.Name, ok, got[:4])
		}
	}
}

// TestFetchFilesComparesSHA256OnBothEnds: every file, large or batched
// with small ones, is hashed by the source as it sends it and by the
// target as it writes it.
func TestFetchFilesComparesSumsOnBothEnds(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 3000, valueSize: 700, flushes: 5})
	e := startEnv(t, src, envOpts{tcp: true})
	_, res := recoverAll(t, e, FetchOptions{})
	requireSummed(t, src, res)
}

// TestResumedFileIsSummedWhole: a stream cut inside a file resumes from
// the last verified offset; the source hashes the part before it and the
// target's running sum goes on, so the file is still compared whole.
func TestResumedFileIsSummedWhole(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 1500, valueSize: 700, random: true})
	cut := hookSends("FetchFile", func(call, n int, _ any) error {
		if call == 1 && n > 3 {
			return status.Error(codes.Unavailable, "test: stream cut")
		}
		return nil
	})
	e := startEnv(t, src, envOpts{server: []grpc.ServerOption{cut}})
	_, res := recoverAll(t, e, FetchOptions{ChunkSize: MinChunkSize, Retry: retry.Options{Initial: time.Millisecond}})
	if res.Resumes != 1 {
		t.Fatalf("resumes %d, want 1", res.Resumes)
	}
	requireSummed(t, src, res)
}

// TestFileWhoseSHA256DiffersFails: a file whose bytes pass every CRC32C
// but whose BLAKE3 sum differs from the source's (here the source's sum is
// changed on the wire) fails the transfer at once, as corrupt, and is not
// fetched again and again.
func TestFileWhoseSumDiffersFails(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 1500, valueSize: 700, random: true})
	mangle := hookSends("FetchFile", func(_, _ int, m any) error {
		if ch := m.(*pb.FileChunk); len(ch.FileSum) > 0 {
			ch.FileSum[0] ^= 1
		}
		return nil
	})
	e := startEnv(t, src, envOpts{server: []grpc.ServerOption{mangle}})
	ctx := ctxT(t)
	pin, info, err := PinCommit(ctx, e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ReleasePin(ctx, e.client, pin.ID)
	_, st := newTarget(t, "rec-sum")
	res, err := FetchFiles(ctx, e.client, testShard, pin, info.Meta.Files, st.Area, FetchOptions{Retry: retry.Options{Initial: time.Millisecond}})
	if !errors.Is(err, engine.ErrCorrupt) || !strings.Contains(err.Error(), "BLAKE3") {
		t.Fatalf("FetchFiles with a changed BLAKE3 sum: %v", err)
	}
	if res.Resumes != 0 || len(res.Summed) != 0 {
		t.Fatalf("result %+v: the file was fetched again or counted as summed", res)
	}
}

// TestOpsDigestOnBothEnds: the ops a target received have the digest the
// source computes over its op log, and an op changed in flight (FetchOps
// has no per-op checksum on the wire) makes them differ.
func TestOpsDigestOnBothEnds(t *testing.T) {
	src := opsSource(t)
	var changed atomic.Bool
	mangle := hookSends("FetchOps", func(call, n int, m any) error {
		if b := m.(*pb.OpBatch); call == 2 && n == 1 {
			for _, op := range b.Ops {
				if len(op.Value) > 0 {
					op.Value[0] ^= 1
					changed.Store(true)
					break
				}
			}
			// Packed batches (the default): the decoded values point
			// into the message's bytes.
			packed, _ := pbconv.OpsFromPacked(nil, b.PackedOps, 0)
			for _, op := range packed {
				if len(op.Value) > 0 && !changed.Load() {
					op.Value[0] ^= 1
					changed.Store(true)
				}
			}
		}
		return nil
	})
	e := startEnv(t, src, envOpts{server: []grpc.ServerOption{mangle}})
	r := seqno.Range{From: 250, To: 999}
	src2, err := GetOpsDigest(ctxT(t), e.client, testShard, r)
	if err != nil {
		t.Fatal(err)
	}
	for call := 1; call <= 2; call++ {
		sum := NewOpsSum(r.From)
		if _, err := FetchOps(ctxT(t), e.client, testShard, r, src.Stats().HistoryUUID, func(ops []shardstore.Op) error {
			sum.Add(ops)
			return nil
		}, OpsOptions{BatchSize: 64}); err != nil {
			t.Fatal(err)
		}
		if sum.Ops() != r.Len() {
			t.Fatalf("summed %d ops, want %d", sum.Ops(), r.Len())
		}
		if same := sum.Sum() == src2.Digest; same == (call == 2) {
			t.Fatalf("stream %d (an op changed in flight: %v): digests equal = %v", call, call == 2 && changed.Load(), same)
		}
	}
	if _, err := GetOpsDigest(ctxT(t), e.client, testShard, seqno.Range{From: 0, To: 5000}); status.Code(errors.Unwrap(err)) != codes.OutOfRange && !strings.Contains(err.Error(), "has seen ops up to") {
		t.Fatalf("digest of ops past the max seqno: %v", err)
	}
}

// TestOpsSumOnTheLastBatch: asked for it, the source hashes the ops it
// sends and puts their sum on the stream's last batch (on a batch of its
// own when the last op filled one); FetchOps compares it with the sum of
// the ops it handed on. An op changed in flight makes it differ; a stream
// cut and resumed, or a call that did not ask, leaves the ops unsummed.
func TestOpsSumOnTheLastBatch(t *testing.T) {
	src := opsSource(t)
	r := seqno.Range{From: 250, To: 999}
	var mangle, cut atomic.Bool
	var lastSum atomic.Int64 // batches that carried a sum
	hook := hookSends("FetchOps", func(call, n int, m any) error {
		b := m.(*pb.OpBatch)
		if len(b.OpsSum) > 0 {
			lastSum.Add(1)
		}
		if mangle.Load() && n == 2 {
			packed, _ := pbconv.OpsFromPacked(nil, b.PackedOps, 0)
			packed[0].Value[0] ^= 1
		}
		if cut.Load() && n == 3 {
			cut.Store(false)
			return status.Error(codes.Unavailable, "stream cut by the test")
		}
		return nil
	})
	e := startEnv(t, src, envOpts{server: []grpc.ServerOption{hook}})
	want, err := GetOpsDigest(ctxT(t), e.client, testShard, r)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(opts OpsOptions) (OpsResult, string) {
		t.Helper()
		sum := NewOpsSum(r.From)
		opts.Retry = retry.Options{Initial: time.Millisecond}
		res, err := FetchOps(ctxT(t), e.client, testShard, r, src.Stats().HistoryUUID, func(ops []shardstore.Op) error {
			sum.Add(ops)
			return nil
		}, opts)
		if err != nil {
			t.Fatal(err)
		}
		return res, sum.Sum()
	}
	// 750 ops in batches of 150: the sum comes alone after the fifth.
	for _, batch := range []int{64, 150} {
		lastSum.Store(0)
		res, got := fetch(OpsOptions{BatchSize: batch, Sum: true})
		if !res.Summed || res.SumDiff != "" || got != want.Digest || lastSum.Load() != 1 {
			t.Fatalf("batches of %d: summed %v (%q), %d sums sent, digest equal %v", batch, res.Summed, res.SumDiff, lastSum.Load(), got == want.Digest)
		}
	}
	if res, _ := fetch(OpsOptions{BatchSize: 64}); res.Summed || lastSum.Load() != 1 {
		t.Fatalf("not asked: summed %v, %d sums sent", res.Summed, lastSum.Load())
	}
	mangle.Store(true)
	res, got := fetch(OpsOptions{BatchSize: 64, Sum: true})
	mangle.Store(false)
	if res.Summed || !strings.Contains(res.SumDiff, "on the source") || got == want.Digest {
		t.Fatalf("an op changed in flight: summed %v, diff %q, digest equal %v", res.Summed, res.SumDiff, got == want.Digest)
	}
	cut.Store(true)
	res, got = fetch(OpsOptions{BatchSize: 64, Sum: true})
	if res.Resumes != 1 || res.Summed || res.SumDiff != "" || got != want.Digest {
		t.Fatalf("a stream cut: %d resumes, summed %v, diff %q, digest equal %v", res.Resumes, res.Summed, res.SumDiff, got == want.Digest)
	}
}

// TestNoOpsSumAboveTheLocalCheckpoint: a source missing an op below the
// end of the range (a gap its local checkpoint stops at) sends no sum: the
// ops it sent are not all the range may hold.
func TestNoOpsSumAboveTheLocalCheckpoint(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{opts: shardstore.Options{RetainOps: 1 << 20}})
	var ops []shardstore.Op
	for s := range seqno.SeqNo(100) {
		if s != 60 {
			ops = append(ops, shardstore.Op{Key: fmt.Sprintf("doc-%d", s), SeqNo: s, PrimaryTerm: 1, Kind: engine.OpIndex, Value: []byte("v")})
		}
	}
	if err := src.Apply(ctxT(t), ops); err != nil {
		t.Fatal(err)
	}
	if st := src.Stats().Seq; st.LocalCheckpoint != 59 || st.MaxSeqNo != 99 {
		t.Fatalf("source at %+v, want a gap at 60", st)
	}
	e := startEnv(t, src, envOpts{})
	for _, tc := range []struct {
		r          seqno.Range
		wantSummed bool
	}{{seqno.Range{From: 0, To: 59}, true}, {seqno.Range{From: 0, To: 99}, false}} {
		res, err := FetchOps(ctxT(t), e.client, testShard, tc.r, src.Stats().HistoryUUID, func([]shardstore.Op) error { return nil }, OpsOptions{Sum: true})
		if err != nil || res.Summed != tc.wantSummed {
			t.Fatalf("ops %v: summed %v, want %v (err %v)", tc.r, res.Summed, tc.wantSummed, err)
		}
	}
}
