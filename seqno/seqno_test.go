package seqno

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestCheckpointTracker(t *testing.T) {
	tests := []struct {
		name      string
		start     SeqNo
		processed []SeqNo
		want      SeqNo
		wantMax   SeqNo
	}{
		{"empty", NoOpsPerformed, nil, NoOpsPerformed, NoOpsPerformed},
		{"in order", NoOpsPerformed, []SeqNo{0, 1, 2}, 2, 2},
		{"gap holds checkpoint", NoOpsPerformed, []SeqNo{0, 2, 3}, 0, 3},
		{"gap closed later", NoOpsPerformed, []SeqNo{3, 2, 0, 1}, 3, 3},
		{"duplicates", NoOpsPerformed, []SeqNo{0, 0, 1, 1}, 1, 1},
		{"below checkpoint ignored", 5, []SeqNo{3, 6}, 6, 6},
		{"first op missing", NoOpsPerformed, []SeqNo{1, 2}, NoOpsPerformed, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewCheckpointTracker(tt.start, tt.start)
			for _, s := range tt.processed {
				tr.MarkProcessed(s)
			}
			if got := tr.Checkpoint(); got != tt.want {
				t.Errorf("checkpoint = %v, want %v", got, tt.want)
			}
			if got := tr.MaxSeqNo(); got != tt.wantMax {
				t.Errorf("max = %v, want %v", got, tt.wantMax)
			}
		})
	}
}

func TestCheckpointTrackerGenerate(t *testing.T) {
	tr := NewCheckpointTracker(9, 9)
	if s := tr.Generate(); s != 10 {
		t.Fatalf("first generated seqno = %v, want 10", s)
	}
	tr.AdvanceMaxSeqNo(20)
	if s := tr.Generate(); s != 21 {
		t.Fatalf("after seeing 20, generated %v, want 21", s)
	}
	if tr.IsProcessed(10) || !tr.IsProcessed(9) {
		t.Fatal("IsProcessed wrong around the checkpoint")
	}
}

func TestCheckpointTrackerGaps(t *testing.T) {
	tr := NewCheckpointTracker(NoOpsPerformed, NoOpsPerformed)
	if g := tr.Gaps(); len(g) != 0 {
		t.Fatalf("gaps of an empty tracker: %v", g)
	}
	for _, s := range []SeqNo{0, 1, 2, 3, 4, 5, 7, 10, 11} {
		tr.MarkProcessed(s)
	}
	tr.AdvanceMaxSeqNo(14) // seen, not processed
	want := []Range{{6, 6}, {8, 9}, {12, 14}}
	if g := tr.Gaps(); !reflect.DeepEqual(g, want) {
		t.Fatalf("gaps %v, want %v", g, want)
	}
	for _, r := range want {
		for s := r.From; s <= r.To; s++ {
			tr.MarkProcessed(s)
		}
	}
	if g := tr.Gaps(); len(g) != 0 || tr.Checkpoint() != 14 {
		t.Fatalf("after filling: gaps %v, checkpoint %v", g, tr.Checkpoint())
	}
}

func TestCheckpointTrackerConcurrent(t *testing.T) {
	tr := NewCheckpointTracker(NoOpsPerformed, NoOpsPerformed)
	const n = 10000
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/8; i++ {
				tr.MarkProcessed(tr.Generate())
			}
		}()
	}
	wg.Wait()
	if got := tr.Checkpoint(); got != n-1 {
		t.Fatalf("checkpoint = %v, want %v", got, n-1)
	}
}

// FuzzCheckpointTracker marks a random permutation of a prefix of seqnos
// (with repeats) and checks the checkpoint against a brute-force model.
func FuzzCheckpointTracker(f *testing.F) {
	f.Add([]byte{0, 1, 2})
	f.Add([]byte{5, 3, 1, 0, 2, 4})
	f.Add([]byte{200, 0, 0, 1})
	f.Fuzz(func(t *testing.T, marks []byte) {
		tr := NewCheckpointTracker(NoOpsPerformed, NoOpsPerformed)
		seen := map[SeqNo]bool{}
		for _, m := range marks {
			s := SeqNo(m % 64)
			tr.MarkProcessed(s)
			seen[s] = true
			want := NoOpsPerformed
			for seen[want+1] {
				want++
			}
			if got := tr.Checkpoint(); got != want {
				t.Fatalf("after %v: checkpoint %v, model %v", marks, got, want)
			}
			for q := SeqNo(0); q < 64; q++ {
				if tr.IsProcessed(q) != seen[q] {
					t.Fatalf("IsProcessed(%v) = %v, model %v", q, tr.IsProcessed(q), seen[q])
				}
			}
		}
	})
}

func TestRange(t *testing.T) {
	r := Range{From: 10, To: 20}
	tests := []struct {
		name string
		have Range
		want []Range
	}{
		{"all present", Range{0, 30}, nil},
		{"none present", Range{30, 40}, []Range{{10, 20}}},
		{"head missing", Range{15, 30}, []Range{{10, 14}}},
		{"tail missing", Range{0, 15}, []Range{{16, 20}}},
		{"middle present", Range{12, 18}, []Range{{10, 11}, {19, 20}}},
		{"have empty", EmptyRange, []Range{{10, 20}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Missing(tt.have); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Missing(%v) = %v, want %v", tt.have, got, tt.want)
			}
		})
	}
	if !(Range{5, 4}).Empty() || (Range{5, 5}).Empty() || (Range{5, 5}).Len() != 1 || (Range{5, 4}).Len() != 0 {
		t.Error("Empty/Len wrong")
	}
	if !r.Contains(10) || !r.Contains(20) || r.Contains(21) {
		t.Error("Contains wrong")
	}
	if !r.Covers(Range{12, 13}) || r.Covers(Range{9, 13}) || !r.Covers(EmptyRange) || (EmptyRange).Covers(Range{1, 1}) {
		t.Error("Covers wrong")
	}
	if err := (Range{-1, 3}).Validate(); err == nil {
		t.Error("negative range accepted")
	}
	if err := (Range{5, 2}).Validate(); err == nil {
		t.Error("inverted range accepted")
	}
	if err := (Range{5, 4}).Validate(); err != nil {
		t.Errorf("empty range after 4 rejected: %v", err)
	}
}

func TestRangeMissingProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		a := Range{SeqNo(r.IntN(50)), SeqNo(r.IntN(50))}
		b := Range{SeqNo(r.IntN(50)), SeqNo(r.IntN(50))}
		for s := SeqNo(0); s < 50; s++ {
			inMissing := false
			for _, m := range a.Missing(b) {
				inMissing = inMissing || m.Contains(s)
			}
			if want := a.Contains(s) && !b.Contains(s); inMissing != want {
				t.Fatalf("%v.Missing(%v) wrong at %v", a, b, s)
			}
		}
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLeases(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "leases")
	clk := &fakeClock{t: time.Unix(1000, 0)}
	opts := LeaseOptions{TTL: time.Minute, Now: clk.now, Floor: 10}
	l, err := OpenLeases(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add("r1", 5, "n2"); !errors.Is(err, ErrCompacted) {
		t.Fatalf("lease below the floor: err = %v, want ErrCompacted", err)
	}
	if _, err := l.Add("r1", 15, "n2"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add("r1", 15, "n2"); !errors.Is(err, ErrLeaseExists) {
		t.Fatalf("duplicate add: %v", err)
	}
	if _, err := l.Add("r2", 30, "n3"); err != nil {
		t.Fatal(err)
	}
	if s, ok := l.MinRetainingSeqNo(); !ok || s != 15 {
		t.Fatalf("min retaining = %v %v", s, ok)
	}
	if f := l.AdvanceFloor(100); f != 15 {
		t.Fatalf("floor advanced past a lease: %v", f)
	}
	clk.t = clk.t.Add(40 * time.Second)
	if _, err := l.Renew("r2", 20); err == nil {
		t.Fatal("renew moved a lease back")
	}
	if _, err := l.Renew("r2", 40); err != nil {
		t.Fatal(err)
	}
	// Reopen: leases are durable.
	l2, err := OpenLeases(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(l2.List()); got != 2 {
		t.Fatalf("after reopen %d leases, want 2", got)
	}
	clk.t = clk.t.Add(30 * time.Second) // r1 is 70s old, r2 30s
	if _, err := l2.Renew("r1", 15); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew of expired lease: %v, want ErrLeaseLost", err)
	}
	gone, err := l2.Expire()
	if err != nil || len(gone) != 0 {
		t.Fatalf("expire after failed renew: %v %v (r1 already dropped)", gone, err)
	}
	clk.t = clk.t.Add(time.Hour)
	if gone, _ := l2.Expire(); len(gone) != 1 || gone[0].ID != "r2" {
		t.Fatalf("expire = %v", gone)
	}
	if _, ok := l2.MinRetainingSeqNo(); ok {
		t.Fatal("expired leases still retain")
	}
	if err := l2.Remove("nope"); err != nil {
		t.Fatal(err)
	}
	l3, err := OpenLeases(path, opts)
	if err != nil || len(l3.List()) != 0 {
		t.Fatalf("expiry not persisted: %v %v", l3.List(), err)
	}
}

func TestLeasesCorruptFileIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases")
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLeases(path, LeaseOptions{TTL: time.Minute}); err == nil {
		t.Fatal("a corrupt leases file was read as an empty set")
	}
}
