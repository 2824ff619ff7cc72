package planner

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// gen turns fuzz bytes into decisions; past the end every decision is 0.
type gen struct {
	b []byte
	i int
}

func (g *gen) next() byte {
	if g.i >= len(g.b) {
		return 0
	}
	c := g.b[g.i]
	g.i++
	return c
}

func (g *gen) n(k int) int { return int(g.next()) % k }

func pick[T any](g *gen, xs ...T) T { return xs[g.n(len(xs))] }

func (g *gen) seq() seqno.SeqNo {
	switch g.n(16) {
	case 0:
		return seqno.NoOpsPerformed
	case 1:
		return seqno.SeqNo(math.MaxInt64 - 1)
	case 2:
		return seqno.SeqNo(math.MaxInt64)
	case 3:
		return -7
	}
	return seqno.SeqNo(g.n(40))
}

// rare is true one time in 12.
func (g *gen) rare() bool { return g.n(12) == 0 }

func (g *gen) commit(base shardstore.CommitData) shardstore.CommitData {
	c := base
	if g.rare() {
		c.HistoryUUID = pick(g, "h1", "h2", "")
	}
	switch {
	case g.rare():
		c.MaxSeqNo = g.seq()
		c.LocalCheckpoint = g.seq()
	case g.n(3) != 0:
		d := seqno.SeqNo(g.n(12)) - 3
		c.MaxSeqNo, c.LocalCheckpoint = max(c.MaxSeqNo-d, -1), max(c.LocalCheckpoint-d-seqno.SeqNo(g.n(3)), -1)
	}
	c.GlobalCheckpoint = c.LocalCheckpoint - seqno.SeqNo(g.n(3))
	if g.rare() {
		c.WriterVersion = pick(g, "0.1.0", "0.2.0", "1.0.0-rc.1", "1.0.0", "2.0.0", "bad", "")
	}
	if g.rare() {
		c.FormatVersion = g.n(4)
	}
	return c
}

// files picks files from a shared pool, so that the same file turns up in
// the source, the target and the snapshot; some are altered.
func (g *gen) files(pool []shardstore.FileMeta) []shardstore.FileMeta {
	var out []shardstore.FileMeta
	mask := g.next()
	for i := range pool {
		if mask&(1<<i) == 0 {
			continue
		}
		f := pool[i]
		if g.n(40) == 0 {
			f = pool[g.n(len(pool))] // maybe listed twice
		}
		switch g.n(8) {
		case 0:
			f.CRC32C++
		case 1:
			f.WriterUUID = pick(g, "", "w1", "w9")
		case 2:
			f.Length += int64(g.n(3))
		case 3:
			if g.n(16) == 0 {
				f.Name = pick(g, "", "../x", ".tmp", "a/b", "seg_7")
			}
		case 4:
			if g.n(16) == 0 {
				f.Length = pick[int64](g, -1, math.MaxInt64, math.MaxInt64/2)
			}
		}
		out = append(out, f)
	}
	return out
}

func genInput(data []byte) Input {
	g := &gen{b: data}
	pool := make([]shardstore.FileMeta, 6)
	for i := range pool {
		pool[i] = fm(string(rune('a'+i))+"_seg", int64(1+g.n(4))<<(10*g.n(3)), uint32(g.n(3)), pick(g, "", "w1", "w2"))
	}
	var in Input
	vers := []string{"0.1.0", "0.2.0", "1.0.0", "1.0.0-rc.1", "bad", ""}
	base := shardstore.CommitData{HistoryUUID: "h1", MaxSeqNo: seqno.SeqNo(g.n(30)) - 1, WriterVersion: "0.1.0", FormatVersion: 1}
	base.LocalCheckpoint = max(base.MaxSeqNo-seqno.SeqNo(g.n(3)), -1)

	in.Source.Meta.Files = g.files(pool)
	in.Source.Meta.Commit = base
	if g.rare() {
		in.Source.Meta.Commit = g.commit(base)
	}
	in.Source.MaxSeqNo = in.Source.Meta.Commit.MaxSeqNo + seqno.SeqNo(g.n(6))
	if g.rare() {
		in.Source.MaxSeqNo = g.seq()
	}
	switch {
	case g.rare():
		in.Source.Retained = seqno.EmptyRange
	case g.rare():
		in.Source.Retained = seqno.Range{From: g.seq(), To: g.seq()}
	default:
		in.Source.Retained = seqno.Range{From: max(in.Source.Meta.Commit.LocalCheckpoint+1-seqno.SeqNo(g.n(30)), 0), To: in.Source.MaxSeqNo}
		if g.rare() {
			in.Source.Retained.To -= seqno.SeqNo(g.n(3))
		}
	}
	for range g.n(3) {
		in.Source.Leases = append(in.Source.Leases, seqno.RetentionLease{ID: pick(g, "", "l1", "l2"), RetainingSeqNo: g.seq()})
	}
	in.Source.OpBytes = pick[int64](g, 0, 0, 1, 1000, 1<<20, -3, math.MaxInt64)
	in.Source.Version, in.Source.MaxFormat = "0.1.0", 1
	if g.rare() {
		in.Source.Version = pick(g, vers...)
	}
	if g.rare() {
		in.Source.MaxFormat = g.n(3)
	}

	in.Target.Version, in.Target.MaxFormat = pick(g, "0.1.0", "1.0.0"), 1+g.n(2)
	if g.rare() {
		in.Target.Version = pick(g, vers...)
	}
	switch g.n(6) {
	case 0:
		in.Target.Empty = true
	case 1:
		in.Target.Unreadable = "corrupt"
	}
	in.Target.Meta.Files = g.files(pool)
	in.Target.Meta.Commit = g.commit(in.Source.Meta.Commit)

	in.Snapshot.State = SnapshotAvailable
	if g.rare() {
		in.Snapshot.State = pick(g, SnapshotNone, SnapshotDisabled, SnapshotUnavailable, "", "weird")
	}
	in.Snapshot.ID = "s-1"
	if g.rare() {
		in.Snapshot.ID = ""
	}
	in.Snapshot.Err = pick(g, "", "timeout")
	in.Snapshot.Files = g.files(pool)
	if g.n(3) == 0 {
		in.Snapshot.Files = append(in.Snapshot.Files, in.Source.Meta.Files...)
	}
	in.Snapshot.Commit = g.commit(in.Source.Meta.Commit)
	if g.n(3) == 0 {
		in.Snapshot.Commit.MaxSeqNo = max(in.Source.Meta.Commit.MaxSeqNo-seqno.SeqNo(g.n(10)), -1)
		in.Snapshot.Commit.LocalCheckpoint = in.Snapshot.Commit.MaxSeqNo
	}

	in.Settings = DefaultSettings()
	if g.rare() {
		in.Settings.UseSnapshots = false
	}
	if g.n(3) == 0 {
		weights := []float64{0, 0.25, 1, 2, -1, math.NaN(), math.Inf(1), 1e300}
		in.Settings.SourceByteCost, in.Settings.RepoByteCost, in.Settings.OpCost = pick(g, weights...), pick(g, weights...), pick(g, weights...)
	}
	return in
}

// FuzzPlan checks the invariants of every plan over random inputs: each
// file of the chosen set is in exactly one list, snapshot plans carry a
// valid peer fallback, the op range is well formed, retained by the source
// and never crosses histories (Validate), plus determinism and the version
// and reuse rules checked here directly.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add([]byte("a snapshot after a primary failover, with ops retained"))
	f.Add([]byte{0, 5, 3, 2, 6, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0, 2, 2, 2, 2, 9, 9, 0, 1, 0, 0, 0, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{255, 254, 253, 252, 251, 250, 249, 248, 247, 246, 245, 244, 243, 242, 241, 240, 239, 238, 237, 236, 235, 234, 233, 232})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := genInput(data)
		p := Compute(in)
		if err := p.Validate(in); err != nil {
			t.Fatalf("invalid plan: %v\ninput: %+v\n%s", err, in, p.Explain())
		}
		if q := Compute(in); !reflect.DeepEqual(p, q) {
			t.Fatalf("not deterministic:\n%s\n%s", p.Explain(), q.Explain())
		}
		if _, err := json.Marshal(p); err != nil {
			t.Fatalf("plan does not encode: %v", err)
		}
		_ = p.Explain() + p.String()

		if c, ok := CompareVersions(in.Target.Version, in.Source.Version); (!ok || c < 0) && !p.Refused() {
			t.Fatalf("target %q, source %q: plan %s not refused", in.Target.Version, in.Source.Version, p.Kind)
		}
		if p.Refused() {
			return
		}
		v := prepare(in)
		for pl := &p; pl != nil; pl = pl.Fallback {
			if pl.Ops.From > pl.Ops.To+1 {
				t.Fatalf("op range %v", pl.Ops)
			}
			if !pl.Ops.Empty() && !in.Source.Retained.Covers(pl.Ops) {
				t.Fatalf("ops %v not retained (%v)", pl.Ops, in.Source.Retained)
			}
			if pl.Commit.HistoryUUID != in.Source.Meta.Commit.HistoryUUID {
				t.Fatalf("ops across histories")
			}
			for _, fl := range [][]shardstore.FileMeta{pl.FromPeer, pl.FromSnapshot} {
				for _, f := range fl {
					if tf, ok := lookup(v.tgt, f.Name); ok && tf.SameAs(f) {
						t.Fatalf("%s copies %s, identical on the target", pl.Kind, f.Name)
					}
				}
			}
		}
		if (p.Kind == KindSnapshot || p.Kind == KindHybrid) && (p.Fallback == nil || p.Fallback.Kind != KindPeer) {
			t.Fatalf("%s plan without a peer fallback", p.Kind)
		}
		if p.Kind == KindSnapshot && p.Commit != in.Snapshot.Commit {
			t.Fatalf("snapshot plan does not publish the snapshot's commit")
		}
		if p.Kind == KindOpsOnly && (in.Target.Empty || in.Target.Unreadable != "") {
			t.Fatalf("ops-only on an empty or unreadable target")
		}
	})
}
