package enginetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// states returns what Shards says, by shard.
func states(t testing.TB, e engine.Engine) map[engine.ShardID]engine.ShardStatus {
	t.Helper()
	list, err := e.Shards(ctx)
	if err != nil {
		t.Fatalf("Shards: %v", err)
	}
	out := map[engine.ShardID]engine.ShardStatus{}
	for _, s := range list {
		if _, dup := out[s.ID]; dup {
			t.Fatalf("Shards lists %s twice", s.ID)
		}
		out[s.ID] = s
	}
	return out
}

// testShards: committed shards are listed and served, by id, across a
// restart of the engine.
func testShards(t *testing.T, h Harness) {
	e, dir := fresh(t, h)
	if got := states(t, e); len(got) != 0 {
		t.Fatalf("a new engine lists %v", got)
	}
	a, b := create(t, e, sid("a")), create(t, e, sid("b"))
	apply(t, a, docs(0, 10, 1))
	flush(t, a)
	got := states(t, e)
	if len(got) != 2 || got[sid("a")].State != engine.StateOpen || got[sid("b")].State != engine.StateOpen {
		t.Fatalf("Shards = %v, want a and b open", got)
	}
	s, err := e.Shard(ctx, sid("a"))
	if err != nil || s.ID() != sid("a") {
		t.Fatalf("Shard(a) = %v, %v", s, err)
	}
	if in := info(t, s); !in.Committed || in.Seq.MaxSeqNo != 9 || in.Meta.Commit.HistoryUUID != info(t, a).Meta.Commit.HistoryUUID {
		t.Fatalf("Shard(a) is not the copy created: %+v", in)
	}
	_, err = e.Shard(ctx, sid("missing"))
	want(t, "Shard of a shard the node does not hold", err, engine.ErrNotFound)
	before := digest(t, a, seqno.Unassigned)
	_ = b

	e.Close()
	e = open(t, h, dir, Options{})
	s, err = e.Shard(ctx, sid("a"))
	if err != nil {
		t.Fatalf("Shard(a) after a restart: %v", err)
	}
	if d := digest(t, s, seqno.Unassigned); d != before {
		t.Fatal("shard a changed across a restart")
	}
	if _, err := e.Shard(ctx, sid("b")); err != nil {
		t.Fatalf("Shard(b) after a restart: %v", err)
	}
	if got := states(t, e); len(got) != 2 {
		t.Fatalf("Shards after a restart = %v", got)
	}
}

// testUncommitted: a copy a recovery creates is no shard of the node until
// it publishes; RemoveUncommitted and SweepUncommitted remove it.
func testUncommitted(t *testing.T, h Harness) {
	e, dir := fresh(t, h)
	id := sid("new")
	tgt, replaced, err := e.OpenTarget(ctx, id)
	if err != nil || replaced != "" {
		t.Fatalf("OpenTarget of a new shard = %q, %v", replaced, err)
	}
	in := info(t, tgt)
	if in.Committed || in.Meta.Generation != 0 || len(in.Meta.Files) != 0 || in.Seq.MaxSeqNo != seqno.NoOpsPerformed || in.Meta.Commit.HistoryUUID != "" {
		t.Fatalf("a new target is %+v, want no commit, no file, no history", in)
	}
	if _, ok := states(t, e)[id]; ok {
		t.Fatal("Shards lists a shard without a commit")
	}
	_, err = e.Shard(ctx, id)
	want(t, "Shard of a shard being created", err, engine.ErrNotFound)
	want(t, "Shard of a shard being created", err, engine.ErrNoCommit)
	_, err = tgt.Pin(ctx, engine.PinOptions{})
	want(t, "Pin without a commit", err, engine.ErrNoCommit)
	want(t, "ReadOps without a commit", tgt.ReadOps(ctx, engine.OpsRequest{Range: seqno.Range{From: 0, To: 0}, History: "h"}, func([]engine.Op) error { return nil }), engine.ErrNoCommit)
	want(t, "Flush without a commit", tgt.Flush(ctx), engine.ErrNoCommit)

	if err := e.RemoveUncommitted(ctx, id); err != nil {
		t.Fatalf("RemoveUncommitted: %v", err)
	}
	_, err = tgt.Info(ctx)
	want(t, "Info of a target removed", err, engine.ErrClosed)
	a := create(t, e, sid("a"))
	if err := e.RemoveUncommitted(ctx, sid("a")); err != nil {
		t.Fatalf("RemoveUncommitted of a committed shard: %v", err)
	}
	if err := e.RemoveUncommitted(ctx, sid("none")); err != nil {
		t.Fatalf("RemoveUncommitted of no shard: %v", err)
	}
	if _, err := e.Shard(ctx, sid("a")); err != nil {
		t.Fatalf("RemoveUncommitted removed a committed shard: %v", err)
	}
	_ = a

	// What recoveries that never published leave when the engine stops:
	// removed, but for those recoverd names (resuming recoveries).
	gone, kept := sid("gone"), sid("kept")
	for _, id := range []engine.ShardID{gone, kept} {
		tgt, _, err := e.OpenTarget(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		st, err := tgt.StartStaging(ctx, "rec-"+id.Index)
		if err != nil {
			t.Fatal(err)
		}
		copyFile(t, "/dev/null", st.Dir()+"/seg_partial")
		if err := st.Suspend(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
	e = open(t, h, dir, Options{})
	removed, err := e.SweepUncommitted(ctx, map[engine.ShardID]bool{kept: true})
	if err != nil || !slices.Equal(removed, []engine.ShardID{gone}) {
		t.Fatalf("SweepUncommitted = %v, %v; want [%s]", removed, err, gone)
	}
	tgt, _, err = e.OpenTarget(ctx, kept)
	if err != nil {
		t.Fatal(err)
	}
	st, err := tgt.StartStaging(ctx, "rec-kept")
	if err != nil {
		t.Fatal(err)
	}
	if !exists(st.Dir() + "/seg_partial") {
		t.Fatal("the staging of a kept target lost its file")
	}
	if removed, err := e.SweepUncommitted(ctx, nil); err != nil || len(removed) != 0 {
		t.Fatalf("SweepUncommitted removed %v (%v) while its recovery uses it", removed, err)
	}
}

// testCorruptAndUnavailable: a copy proven damaged is listed corrupt and
// moved aside by a recovery; one unreadable now is listed unavailable,
// never moved, and opens once it reads again.
func testCorruptAndUnavailable(t *testing.T, h Harness) {
	e, dir := fresh(t, h)
	for _, name := range []string{"damaged", "unreadable"} {
		s := create(t, e, sid(name))
		apply(t, s, docs(0, 20, 1))
		flush(t, s)
	}
	u, _ := e.Shard(ctx, sid("unreadable"))
	before := digest(t, u, seqno.Unassigned)
	e.Close()
	h.Damage(t, dir, sid("damaged"))
	restore := h.Unreadable(t, dir, sid("unreadable"))
	e = open(t, h, dir, Options{})

	_, err := e.Shard(ctx, sid("damaged"))
	want(t, "Shard of a damaged shard", err, engine.ErrCorrupt)
	_, err = e.Shard(ctx, sid("unreadable"))
	want(t, "Shard of an unreadable shard", err, engine.ErrUnavailable)
	if errors.Is(err, engine.ErrCorrupt) {
		t.Fatalf("an unreadable shard is reported corrupt: %v", err)
	}
	got := states(t, e)
	if s := got[sid("damaged")]; s.State != engine.StateCorrupt || s.Reason == "" {
		t.Fatalf("Shards says %+v of the damaged shard, want corrupt with a reason", s)
	}
	if s := got[sid("unreadable")]; s.State != engine.StateUnavailable || s.Reason == "" {
		t.Fatalf("Shards says %+v of the unreadable shard, want unavailable with a reason", s)
	}

	// A recovery must not replace a copy that was not proven bad.
	_, replaced, err := e.OpenTarget(ctx, sid("unreadable"))
	want(t, "OpenTarget of an unreadable shard", err, engine.ErrUnavailable)
	if replaced != "" {
		t.Fatalf("OpenTarget moved an unreadable shard aside: %s", replaced)
	}
	// It moves a damaged one aside and starts from nothing.
	tgt, replaced, err := e.OpenTarget(ctx, sid("damaged"))
	if err != nil || replaced == "" {
		t.Fatalf("OpenTarget of a damaged shard = %q, %v; want it moved aside, with why", replaced, err)
	}
	if in := info(t, tgt); in.Committed || len(in.Meta.Files) != 0 {
		t.Fatalf("the target that replaced a damaged shard is %+v, want one without a commit", in)
	}
	if s, ok := states(t, e)[sid("damaged")]; ok {
		t.Fatalf("the damaged shard is still listed after it was moved aside: %+v", s)
	}

	restore()
	s, err := e.Shard(ctx, sid("unreadable"))
	if err != nil {
		t.Fatalf("the shard does not open once it reads again: %v", err)
	}
	if digest(t, s, seqno.Unassigned) != before {
		t.Fatal("the unreadable shard lost data")
	}
	if got := states(t, e)[sid("unreadable")]; got.State != engine.StateOpen {
		t.Fatalf("Shards says %+v once it opened", got)
	}
}
