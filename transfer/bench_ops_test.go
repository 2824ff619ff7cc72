package transfer

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// Run: go test -run '^$' -bench OpsReplay -benchtime 5x ./transfer/
//
// BenchmarkOpsReplay replays 50,000 ops of 100-byte documents through the
// path of an ops-only recovery: the source's op log read (engine ReadOps),
// PeerServer batches, gRPC over an in-process connection, FetchOps and
// Apply on a fresh target shard (op log append, one fsync per batch,
// memtable). It reports replayed ops/s and the allocations and bytes
// allocated per replayed op by the whole process (both ends).
func BenchmarkOpsReplay(b *testing.B) {
	const n = 50000
	src := newSourceShard(b, b.TempDir(), sourceSpec{docs: n, valueSize: 100, opts: shardstore.Options{RetainOps: 1 << 30}})
	history := src.Stats().HistoryUUID
	e := startEnv(b, src, envOpts{})
	ctx := context.Background()
	var (
		ms0, ms1 runtime.MemStats
		ops      int64
		elapsed  time.Duration
		mallocs  uint64
		alloced  uint64
	)
	i := 0
	for b.Loop() {
		i++
		b.StopTimer()
		tgt, err := shardstore.Open(b.TempDir(), testShard, shardstore.Options{Create: true})
		if err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&ms0)
		start := time.Now()
		b.StartTimer()
		res, err := FetchOps(ctx, e.client, testShard, seqno.Range{From: 0, To: n - 1}, history, func(batch []shardstore.Op) error {
			return tgt.Apply(ctx, batch)
		}, OpsOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		elapsed += time.Since(start)
		runtime.ReadMemStats(&ms1)
		mallocs += ms1.Mallocs - ms0.Mallocs
		alloced += ms1.TotalAlloc - ms0.TotalAlloc
		ops += res.Ops
		if got := tgt.Stats().Seq.LocalCheckpoint; got != n-1 {
			b.Fatalf("run %d: target checkpoint %v, want %d", i, got, n-1)
		}
		if err := tgt.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(ops)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(mallocs)/float64(ops), "allocs/replayed-op")
	b.ReportMetric(float64(alloced)/float64(ops), "B/replayed-op")
}
