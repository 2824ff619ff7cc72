package shardstore

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkIndexGroupCommit indexes one doc per call from many goroutines:
// each call waits for an fsync, and group commit lets one fsync serve all
// the calls that arrived while the previous one ran.
func BenchmarkIndexGroupCommit(b *testing.B) {
	s := openNew(b, b.TempDir(), Options{})
	val := make([]byte, 100)
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Index(ctx, fmt.Sprintf("k%d", n.Add(1)), val); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkIndexBatch1000 indexes batches of 1000 docs, one fsync a batch.
func BenchmarkIndexBatch1000(b *testing.B) {
	s := openNew(b, b.TempDir(), Options{})
	docs := make([]Doc, 1000)
	val := make([]byte, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range docs {
			docs[j] = Doc{Key: fmt.Sprintf("k%d-%d", i, j), Value: val}
		}
		if _, err := s.IndexBatch(ctx, docs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(docs))/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkFlush32MiB writes a 32 MiB memtable into a segment.
func BenchmarkFlush32MiB(b *testing.B) {
	s := openNew(b, b.TempDir(), Options{})
	const docSize, docs = 4096, 8192
	val := make([]byte, docSize)
	batch := make([]Doc, 512)
	b.SetBytes(docSize * docs)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := 0; j < docs; j += len(batch) {
			for k := range batch {
				batch[k] = Doc{Key: fmt.Sprintf("k%08d", j+k), Value: val}
			}
			if _, err := s.IndexBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if err := s.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenAfterCrash1M reopens a shard whose op log holds 1,000,000
// unflushed ops (what a crash before any flush leaves): the time is the
// op log scan and replay.
func BenchmarkOpenAfterCrash1M(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, ShardID{Index: "idx", Shard: 0}, Options{Create: true, FlushBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	docs := make([]Doc, 10000)
	val := make([]byte, 64)
	for i := 0; i < 100; i++ {
		for j := range docs {
			docs[j] = Doc{Key: fmt.Sprintf("k%07d", i*len(docs)+j), Value: val}
		}
		if _, err := s.IndexBatch(ctx, docs); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(dir, ShardID{Index: "idx", Shard: 0}, Options{FlushBytes: -1})
		if err != nil {
			b.Fatal(err)
		}
		if cp := s.Stats().Seq.LocalCheckpoint; cp != 999_999 {
			b.Fatalf("checkpoint %v after replay", cp)
		}
		s.Close()
	}
}

// BenchmarkPublish times Publish alone (the staged files made durable,
// moved into place, one commit) for many small segments and a few large
// ones, as a peer recovery ends.
func BenchmarkPublish(b *testing.B) {
	for _, c := range []struct {
		name       string
		segs, docs int
		value      int
	}{{"64x128KiB", 64, 128, 1024}, {"4x16MiB", 4, 4096, 4096}} {
		b.Run(c.name, func(b *testing.B) {
			src := openNew(b, b.TempDir(), Options{FlushBytes: -1})
			val := make([]byte, c.value)
			for i := range c.segs {
				docs := make([]Doc, c.docs)
				for j := range docs {
					docs[j] = Doc{Key: fmt.Sprintf("k%03d-%06d", i, j), Value: val}
				}
				if _, err := src.IndexBatch(ctx, docs); err != nil {
					b.Fatal(err)
				}
				if err := src.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(src.Metadata().TotalBytes())
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				dst := openNew(b, b.TempDir(), Options{})
				st, err := dst.StartStaging(fmt.Sprintf("rec-%d", i))
				if err != nil {
					b.Fatal(err)
				}
				files := copyShardFiles(b, src, st)
				b.StartTimer()
				if err := st.Publish(files, src.Metadata().Commit); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
