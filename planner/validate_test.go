package planner

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

func TestValidateRejectsBrokenPlans(t *testing.T) {
	in := failover()
	in.Target.Meta.Files = []shardstore.FileMeta{in.Snapshot.Files[0]}
	good := Compute(in)
	mustValid(t, in, good)
	wantKind(t, good, KindSnapshot)
	clone := func() Plan {
		var p Plan
		b, _ := json.Marshal(good)
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	breakers := map[string]func(*Plan){
		"file dropped":         func(p *Plan) { p.FromSnapshot = p.FromSnapshot[1:] },
		"file twice":           func(p *Plan) { p.FromSnapshot = append(p.FromSnapshot, p.Reused[0]) },
		"foreign file":         func(p *Plan) { p.FromSnapshot = append(p.FromSnapshot, fm("zzz", 1, 1, "")) },
		"peer file in snap":    func(p *Plan) { p.FromPeer = append(p.FromPeer, p.FromSnapshot[0]); p.FromSnapshot = nil },
		"reuse not identical":  func(p *Plan) { p.Reused = append(p.Reused, p.FromSnapshot[0]); p.FromSnapshot = nil },
		"ops inverted":         func(p *Plan) { p.Ops = seqno.Range{From: 950, To: 930} },
		"ops not retained":     func(p *Plan) { p.Ops.From = 100 },
		"ops too short":        func(p *Plan) { p.Ops.To = 920 },
		"lease wrong":          func(p *Plan) { p.Lease.RetainingSeqNo = 0 },
		"no lease":             func(p *Plan) { p.Lease = nil },
		"no fallback":          func(p *Plan) { p.Fallback = nil },
		"fallback not peer":    func(p *Plan) { p.Fallback.Kind = KindHybrid },
		"fallback invalid":     func(p *Plan) { p.Fallback.FromPeer = nil },
		"other history":        func(p *Plan) { p.Commit.HistoryUUID = "h0" },
		"other snapshot":       func(p *Plan) { p.SnapshotID = "s-1" },
		"bytes wrong":          func(p *Plan) { p.BytesFromRepo++ },
		"no reasons":           func(p *Plan) { p.Reasons = nil },
		"unknown kind":         func(p *Plan) { p.Kind = "magic" },
		"refusal moving files": func(p *Plan) { p.Kind = KindRefused },
	}
	for name, b := range breakers {
		t.Run(name, func(t *testing.T) {
			p := clone()
			b(&p)
			if err := p.Validate(in); !errors.Is(err, ErrInvalidPlan) {
				t.Errorf("Validate = %v, want ErrInvalidPlan", err)
			}
		})
	}
	// A plan for an input that demands a refusal.
	old := in
	old.Target.Version = "0.0.9"
	if err := good.Validate(old); err == nil {
		t.Error("Validate accepted a plan for a target older than the source")
	}
	// Snapshots turned off after planning.
	off := in
	off.Settings.UseSnapshots = false
	if err := good.Validate(off); err == nil {
		t.Error("Validate accepted a snapshot plan with snapshots off")
	}
}

// TestValidateRejectsContinuingStaleOps: a plan that continues a commit
// whose ops above its global checkpoint are of an older term is invalid,
// whoever made it.
func TestValidateRejectsContinuingStaleOps(t *testing.T) {
	in := failover()
	in.Source.Meta.Commit.PrimaryTerm = 2
	in.Source.Retained = seqno.Range{From: 0, To: 930}
	in.Target.Meta.Commit = commitAt("h1", 880, 880)
	in.Target.Meta.Commit.MaxTermAboveGlobalCheckpoint = 2
	in.Target.Meta.Commit.GlobalCheckpoint = 800
	p := Compute(in)
	wantKind(t, p, KindOpsOnly)
	in.Target.Meta.Commit.MaxTermAboveGlobalCheckpoint = 1
	p.Commit = in.Target.Meta.Commit
	if err := p.Validate(in); err == nil || !strings.Contains(err.Error(), "older than the source's term 2") {
		t.Fatalf("Validate accepted an ops-only plan over stale ops: %v", err)
	}
}
