package recovery

import (
	"testing"

	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/shardstore"
)

// TestOpsOnlyRecoveryTakesTheSourceTerm: a copy's term is never raised from
// the ops it applies, so an ops-only recovery from a primary promoted since
// gives the copy the source's term itself; a later promotion of the copy
// then goes past it.
func TestOpsOnlyRecoveryTakesTheSourceTerm(t *testing.T) {
	e := newEnv(t, shardstore.Options{RetainOps: 1000}, Config{})
	src := e.source()
	write(t, src, 300, 0, 64)
	src.SetGlobalCheckpoint(299)
	flush(t, src)
	requireDone(t, e.run(StartRequest{}))

	if err := src.Promote(); err != nil {
		t.Fatal(err)
	}
	write(t, src, 100, 300, 64)
	s := e.run(StartRequest{})
	requireDone(t, s)
	if s.Plan == nil || s.Plan.Kind != planner.KindOpsOnly {
		t.Fatalf("plan %v, want ops-only", s.Plan)
	}
	tgt := e.target()
	if got := tgt.Stats().PrimaryTerm; got != 2 {
		t.Fatalf("after an ops-only recovery from a term-2 source the copy is at term %d", got)
	}
	if got := tgt.Metadata().Commit.PrimaryTerm; got != 2 {
		t.Fatalf("the copy's commit says term %d, want 2", got)
	}
}
