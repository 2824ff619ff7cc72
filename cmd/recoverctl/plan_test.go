package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// plCopyShard copies the shard directory of spID from one data directory
// to another: the copy has the same history, commit and files.
func plCopyShard(t *testing.T, fromData, toData string) {
	t.Helper()
	if err := os.CopyFS(shardstore.Dir(toData, spID), os.DirFS(shardstore.Dir(fromData, spID))); err != nil {
		t.Fatal(err)
	}
}

func plPlan(t *testing.T, src, tgt string, extra ...string) planOutput {
	t.Helper()
	var p planOutput
	spJSON(t, &p, append([]string{"plan", "--explain", "--source-data", src, "--target-data", tgt, "--index", "logs", "--shard", "0"}, extra...)...)
	return p
}

func plHasReason(p planOutput, sub string) bool {
	for _, r := range p.Reasons {
		if strings.Contains(r, sub) {
			return true
		}
	}
	return false
}

func TestPlanOpsOnly(t *testing.T) {
	spCleanEnv(t)
	src, tgt := t.TempDir(), t.TempDir()
	spWrite(t, src, 0, 100, 50)
	plCopyShard(t, src, tgt) // the target has the source's commit at seqno 99
	spWrite(t, src, 100, 50, 50)

	p := plPlan(t, src, tgt)
	if p.Kind != planner.KindOpsOnly || p.Ops != (seqno.Range{From: 100, To: 149}) || len(p.FromPeer) != 0 || len(p.FromSnapshot) != 0 {
		t.Fatalf("plan: %s\n%v", p.Plan, p.Reasons)
	}
	if p.Input.Source.Retained != (seqno.Range{From: 0, To: 149}) || len(p.Notes) != 0 {
		t.Fatalf("source input: retained %v, notes %v", p.Input.Source.Retained, p.Notes)
	}
	if p.Input.Snapshot.State != planner.SnapshotDisabled || p.Input.Source.Version != shardstore.WriterVersion || p.Input.Target.MaxFormat != shardstore.FormatVersion {
		t.Fatalf("input: %+v", p.Input.Snapshot)
	}

	// The text form is Plan.Explain, after a summary of the input.
	out := spMust(t, "plan", "--explain", "--source-data", src, "--target-data", tgt, "--index", "logs")
	for _, want := range []string{"plan: ops-only", "ops: replay [100..149]", "reasons:", "source    " + src, "snapshot  disabled"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	out = spMust(t, "plan", "--explain=false", "--source-data", src, "--target-data", tgt, "--index", "logs")
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "ops-only") {
		t.Errorf("--explain=false: %q", out)
	}
}

func TestPlanPeer(t *testing.T) {
	spCleanEnv(t)
	src, tgt := t.TempDir(), filepath.Join(t.TempDir(), "never-created")
	spWrite(t, src, 0, 200, 100)

	// No repository.
	p := plPlan(t, src, tgt)
	if p.Kind != planner.KindPeer || len(p.FromPeer) != 2 || !p.Input.Target.Empty || p.Fallback != nil {
		t.Fatalf("plan: %s\n%v", p.Plan, p.Reasons)
	}
	// A repository without a snapshot of the shard.
	repo := "file://" + t.TempDir()
	p = plPlan(t, src, tgt, "--repo", repo)
	if p.Kind != planner.KindPeer || p.Input.Snapshot.State != planner.SnapshotNone || !plHasReason(p, "no snapshot") {
		t.Fatalf("plan with an empty repository: %s\n%v", p.Plan, p.Reasons)
	}
	// A repository directory that does not exist is unavailable, not empty.
	p = plPlan(t, src, tgt, "--repo", "file://"+filepath.Join(t.TempDir(), "typo"))
	if p.Kind != planner.KindPeer || p.Input.Snapshot.State != planner.SnapshotUnavailable || !plHasReason(p, "unavailable") {
		t.Fatalf("plan with a missing repository: %s\n%v", p.Plan, p.Reasons)
	}
}

// TestPlanSnapshotAfterFailover: the source and a replica hold the same
// ops in physically different files (other flush points and a merge); a
// snapshot of the replica is logically the source's commit, so an empty
// target is restored from the repository, with the peer as the fallback.
func TestPlanSnapshotAfterFailover(t *testing.T) {
	spCleanEnv(t)
	ctx := context.Background()
	src, replicaData, tgt := t.TempDir(), t.TempDir(), t.TempDir()
	repo := "file://" + filepath.Join(t.TempDir(), "repo")

	spWrite(t, src, 0, 0, 1)         // an empty primary
	plCopyShard(t, src, replicaData) // the replica: same history, no ops yet
	primary, err := shardstore.Open(src, spID, shardstore.Options{RetainOps: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	spIndex(t, primary, 0, 600, 200)
	var ops []shardstore.Op
	if err := primary.ReadOps(primary.RetainedOps(), func(op shardstore.Op) error { ops = append(ops, op); return nil }); err != nil {
		t.Fatal(err)
	}
	primary.Close()
	replica, err := shardstore.Open(replicaData, spID, shardstore.Options{RetainOps: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ops); i += 150 {
		if err := replica.Apply(ctx, ops[i:min(i+150, len(ops))]); err != nil {
			t.Fatal(err)
		}
		if err := replica.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := replica.Merge(); err != nil {
		t.Fatal(err)
	}
	replica.Close()
	var c snapCreateOutput
	spJSON(t, &c, "snapshot", "create", "--data", replicaData, "--index", "logs", "--repo", repo)

	p := plPlan(t, src, tgt, "--repo", repo)
	if p.Kind != planner.KindSnapshot || p.SnapshotID != c.SnapshotID || len(p.FromPeer) != 0 || len(p.FromSnapshot) == 0 ||
		p.Fallback == nil || p.Fallback.Kind != planner.KindPeer {
		t.Fatalf("plan: %s\n%s", p.Plan, strings.Join(p.Reasons, "\n"))
	}
	if p.Input.Snapshot.State != planner.SnapshotAvailable || !p.Input.Target.Empty {
		t.Fatalf("input: snapshot %s, target empty %v", p.Input.Snapshot.State, p.Input.Target.Empty)
	}
	// Snapshots turned off: the peer.
	p = plPlan(t, src, tgt, "--repo", repo, "--no-snapshots")
	if p.Kind != planner.KindPeer || p.Input.Settings.UseSnapshots {
		t.Fatalf("--no-snapshots: %s", p.Plan)
	}

	// While "the daemon" holds the source, the retained range is the
	// commit's, and a note says so; the plan is still the snapshot.
	held, err := shardstore.Open(src, spID, shardstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	p = plPlan(t, src, tgt, "--repo", repo)
	if p.Kind != planner.KindSnapshot || len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "locked") {
		t.Fatalf("locked source: %s, notes %v", p.Plan, p.Notes)
	}
	out := spMust(t, "plan", "--explain", "--source-data", src, "--target-data", tgt, "--index", "logs", "--repo", repo)
	if !strings.Contains(out, "note: source shard is locked") || !strings.Contains(out, "plan: snapshot") || !strings.Contains(out, "fallback:") {
		t.Fatalf("text output:\n%s", out)
	}
}

func TestPlanCorruptTarget(t *testing.T) {
	spCleanEnv(t)
	src, tgt := t.TempDir(), t.TempDir()
	spWrite(t, src, 0, 100, 100)
	spWrite(t, tgt, 0, 10, 10)
	commits, err := filepath.Glob(filepath.Join(shardstore.Dir(tgt, spID), "commit_*"))
	if err != nil || len(commits) == 0 {
		t.Fatalf("no commit in the target: %v", err)
	}
	for _, c := range commits {
		if err := os.WriteFile(c, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := plPlan(t, src, tgt)
	if p.Kind != planner.KindPeer || p.Input.Target.Unreadable == "" || p.Input.Target.Empty || !plHasReason(p, "unreadable") {
		t.Fatalf("corrupt target: %s, target %+v\n%v", p.Plan, p.Input.Target, p.Reasons)
	}
}

func TestPlanUsageAndMissingSource(t *testing.T) {
	spCleanEnv(t)
	dir := t.TempDir()
	for _, args := range [][]string{
		{"plan", "--target-data", dir, "--index", "logs"},
		{"plan", "--source-data", dir, "--index", "logs"},
		{"plan", "--source-data", dir, "--target-data", dir},
		{"plan", "--source-data", dir, "--target-data", dir, "--index", "a/b"},
		{"plan", "--source-data", dir, "--target-data", dir, "--index", "logs", "--repo", "gs://bucket"},
	} {
		if _, err := spRun(t, args...); !spIsUsage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	// No source shard: an error, not a plan.
	if _, err := spRun(t, "plan", "--source-data", dir, "--target-data", t.TempDir(), "--index", "logs"); err == nil || spIsUsage(err) {
		t.Errorf("missing source: %v", err)
	}
	out := spMust(t, "plan", "--help")
	if !strings.Contains(out, "Examples:") || !strings.Contains(out, "--explain") {
		t.Errorf("plan --help:\n%s", out)
	}
}
