package planner

import (
	"fmt"
	"testing"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// bigInput is a shard of n files where every candidate is computed: the
// target holds a third of the source's files, the snapshot (logically
// equivalent) holds another third of them plus files of its own.
func bigInput(n int) Input {
	src := make([]shardstore.FileMeta, n)
	var tgt, snap []shardstore.FileMeta
	for i := range src {
		f := fm(fmt.Sprintf("seg_%08d", i), int64(1+i%4096)<<10, uint32(i), "w1")
		src[i] = f
		switch i % 3 {
		case 0:
			tgt = append(tgt, f)
		case 1:
			snap = append(snap, f)
		default:
			g := f
			g.WriterUUID = "old-primary"
			snap = append(snap, g)
		}
	}
	return Input{
		Source: Source{
			Meta:     shardstore.Metadata{Files: src, Commit: commitAt("h1", 1_000_000, 1_000_000)},
			MaxSeqNo: 1_000_500, Retained: seqno.Range{From: 990_000, To: 1_000_500},
			Version: "0.1.0", MaxFormat: 1,
		},
		Target: Target{
			Meta:    shardstore.Metadata{Files: tgt, Commit: commitAt("h0", 5, 5)},
			Version: "0.1.0", MaxFormat: 1,
		},
		Snapshot: Snapshot{State: SnapshotAvailable, ID: "s-big", Files: snap, Commit: commitAt("h1", 1_000_000, 1_000_000)},
		Settings: DefaultSettings(),
	}
}

func BenchmarkPlan100kFiles(b *testing.B) {
	in := bigInput(100_000)
	p := Compute(in)
	if err := p.Validate(in); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s", p)
	b.ReportAllocs()
	for b.Loop() {
		Compute(in)
	}
}

func BenchmarkValidate100kFiles(b *testing.B) {
	in := bigInput(100_000)
	p := Compute(in)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Validate(in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPlanMemoryLinearInFiles checks that ten times the files costs about
// ten times the memory (and not a hundred).
func TestPlanMemoryLinearInFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a large input")
	}
	bytes := func(n int) float64 {
		in := bigInput(n)
		r := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Compute(in)
			}
		})
		return float64(r.AllocedBytesPerOp())
	}
	small, large := bytes(10_000), bytes(100_000)
	if ratio := large / small; ratio > 14 {
		t.Errorf("10x the files costs %.1fx the memory (%.0f -> %.0f bytes)", ratio, small, large)
	}
}
