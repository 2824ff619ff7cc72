package enginetest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// testRefuseWrites: while a recovery refuses them, primary writes fail and
// replicated ops go on; writes resume once no recovery refuses.
func testRefuseWrites(t *testing.T, h Harness) {
	e, _ := fresh(t, h)
	id := sid("w")
	// Refused before the shard exists: a recovery refuses from the moment
	// it is accepted.
	if err := e.RefuseWrites(ctx, id, "rec-1"); err != nil {
		t.Fatal(err)
	}
	s := create(t, e, id)
	want(t, "a write while rec-1 refuses", h.Index(ctx, e, id, 3), engine.ErrWritesRefused)
	if err := e.RefuseWrites(ctx, id, "rec-2"); err != nil {
		t.Fatal(err)
	}
	apply(t, s, docs(0, 5, 1)) // replicated ops go on
	flush(t, s)
	if err := e.ResumeWrites(ctx, id, "rec-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.ResumeWrites(ctx, id, "rec-unknown"); err != nil {
		t.Fatalf("ResumeWrites of a recovery that refuses nothing: %v", err)
	}
	want(t, "a write while rec-2 refuses", h.Index(ctx, e, id, 3), engine.ErrWritesRefused)
	if err := e.ResumeWrites(ctx, id, "rec-2"); err != nil {
		t.Fatal(err)
	}
	if err := h.Index(ctx, e, id, 3); err != nil {
		t.Fatalf("a write once no recovery refuses: %v", err)
	}
	if in := info(t, s); in.Seq.MaxSeqNo != 7 {
		t.Fatalf("after 5 replicated ops and 3 writes the copy is at %v", in.Seq)
	}
}

// testPublish: files, commit data and staged ops become the copy's
// content in one step; the result is the source's content.
func testPublish(t *testing.T, h Harness) {
	e, dir := fresh(t, h)
	src := source(t, e, sid("src"))
	dst := create(t, e, sid("dst"))
	apply(t, dst, docs(0, 50, 1)) // old content, another history
	flush(t, dst)
	st, err := dst.StartStaging(ctx, "rec-publish")
	if err != nil {
		t.Fatal(err)
	}
	if st.ID() != "rec-publish" || !filepath.IsAbs(st.Dir()) {
		t.Fatalf("staging %q in %q", st.ID(), st.Dir())
	}
	md := stage(t, src, st)
	commit := md.Commit
	commit.PrimaryTerm = 2 // a source of a newer term
	if err := st.Publish(ctx, md.Files, commit); err != nil {
		t.Fatal(err)
	}
	in, sin := info(t, dst), info(t, src)
	switch {
	case in.Meta.Commit.HistoryUUID != sin.Meta.Commit.HistoryUUID:
		t.Fatalf("published history %s, the source's %s", in.Meta.Commit.HistoryUUID, sin.Meta.Commit.HistoryUUID)
	case in.Seq.MaxSeqNo != sin.Seq.MaxSeqNo || in.Seq.LocalCheckpoint != sin.Seq.LocalCheckpoint:
		t.Fatalf("published seqnos %v, the source's %v (the staged ops are part of it)", in.Seq, sin.Seq)
	case in.PrimaryTerm != 2 || in.Meta.Commit.PrimaryTerm != 2:
		t.Fatalf("published term %d/%d, want the commit's 2", in.PrimaryTerm, in.Meta.Commit.PrimaryTerm)
	case !slices.Equal(in.Meta.Files, md.Files):
		t.Fatalf("published files %v, want %v", in.Meta.Files, md.Files)
	}
	if digest(t, dst, seqno.Unassigned) != digest(t, src, seqno.Unassigned) {
		t.Fatal("the published copy differs from its source")
	}
	if exists(st.Dir()) {
		t.Fatal("the staging directory is left after publish")
	}
	want(t, "Publish of a staging published", st.Publish(ctx, md.Files, commit), engine.ErrClosed)
	// The copy is a source in its turn, and durable.
	if got := readOps(t, dst, seqno.Range{From: md.Commit.LocalCheckpoint + 1, To: sin.Seq.MaxSeqNo}); len(got) != 40 {
		t.Fatalf("the published copy serves %d of its 40 staged ops", len(got))
	}
	wantDigest := digest(t, src, seqno.Unassigned)
	e.Close()
	e = open(t, h, dir, Options{})
	d, err := e.Shard(ctx, sid("dst"))
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, d, seqno.Unassigned) != wantDigest || info(t, d).Seq.MaxSeqNo != sin.Seq.MaxSeqNo {
		t.Fatal("the published copy changed across a restart")
	}
	// A recovery that keeps files of the current commit lists them.
	tgt, _, err := e.OpenTarget(ctx, sid("dst"))
	if err != nil {
		t.Fatal(err)
	}
	st, err = tgt.StartStaging(ctx, "rec-keep")
	if err != nil {
		t.Fatal(err)
	}
	cur := info(t, tgt).Meta
	if err := st.Publish(ctx, cur.Files, cur.Commit); err != nil {
		t.Fatalf("publish of the current commit's files, kept: %v", err)
	}
	if got := info(t, tgt).Meta; !slices.Equal(got.Files, cur.Files) || got.Generation <= cur.Generation {
		t.Fatalf("after a publish keeping every file: %+v", got)
	}
}

// testPublishRefusals: every check of Publish, each leaving the copy as it
// was and the staging usable.
func testPublishRefusals(t *testing.T, h Harness) {
	e, _ := fresh(t, h)
	src := source(t, e, sid("src"))
	dst := create(t, e, sid("dst"))
	apply(t, dst, docs(0, 50, 7))
	flush(t, dst)
	before, old := info(t, dst), digest(t, dst, seqno.Unassigned)
	st, err := dst.StartStaging(ctx, "rec-refused")
	if err != nil {
		t.Fatal(err)
	}
	_, err = dst.StartStaging(ctx, "rec-refused")
	want(t, "a second StartStaging of one recovery", err, engine.ErrStagingExists)
	md := stage(t, src, st)
	f0 := md.Files[0]
	path := filepath.Join(st.Dir(), f0.Name)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(fs []engine.FileMeta) []engine.FileMeta) []engine.FileMeta {
		return f(slices.Clone(md.Files))
	}
	refused := func(what string, files []engine.FileMeta, c engine.CommitData, target error) {
		t.Helper()
		want(t, "publish with "+what, st.Publish(ctx, files, c), target)
		if in := info(t, dst); in.Meta.Generation != before.Meta.Generation || digest(t, dst, seqno.Unassigned) != old {
			t.Fatalf("a publish refused (%s) changed the copy", what)
		}
	}
	c := md.Commit
	bad := c
	bad.LocalCheckpoint = bad.MaxSeqNo + 1
	refused("a checkpoint above the max seqno", md.Files, bad, engine.ErrInvalidArgument)
	bad = c
	bad.HistoryUUID = ""
	refused("no history", md.Files, bad, engine.ErrInvalidArgument)
	bad = c
	bad.FormatVersion = e.Version().MaxFormat + 1
	refused("a format newer than the engine reads", md.Files, bad, engine.ErrInvalidArgument)
	refused("a file listed twice", with(func(fs []engine.FileMeta) []engine.FileMeta { return append(fs, fs[0]) }), c, engine.ErrInvalidArgument)
	refused("a file neither staged nor kept", with(func(fs []engine.FileMeta) []engine.FileMeta {
		return append(fs, engine.FileMeta{Name: "seg_never_staged", Length: 100, CRC32C: 1})
	}), c, engine.ErrInvalidArgument)
	refused("a name with a separator", with(func(fs []engine.FileMeta) []engine.FileMeta {
		return append(fs, engine.FileMeta{Name: "../" + f0.Name, Length: f0.Length, CRC32C: f0.CRC32C})
	}), c, engine.ErrInvalidName)
	refused("a checksum other than the file's", with(func(fs []engine.FileMeta) []engine.FileMeta { fs[0].CRC32C++; return fs }), c, engine.ErrCorrupt)
	if err := os.WriteFile(path, good[:len(good)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	refused("a file shorter than listed", md.Files, c, engine.ErrCorrupt)
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	// A staged file under the name of another file of the current commit.
	clash := before.Meta.Files[0]
	copyFile(t, path, filepath.Join(st.Dir(), clash.Name))
	refused("a staged file replacing another", with(func(fs []engine.FileMeta) []engine.FileMeta {
		fs[0].Name = clash.Name
		return fs
	}), c, engine.ErrConflict)
	os.Remove(filepath.Join(st.Dir(), clash.Name))

	// The staging is as usable as before the refusals.
	if err := st.Publish(ctx, md.Files, c); err != nil {
		t.Fatalf("publish after the refusals: %v", err)
	}
	if digest(t, dst, seqno.Unassigned) != digest(t, src, seqno.Unassigned) {
		t.Fatal("the published copy differs from its source")
	}
}

// testAbandon: an abandoned staging leaves nothing, and the copy as it was.
func testAbandon(t *testing.T, h Harness) {
	e, _ := fresh(t, h)
	src := source(t, e, sid("src"))
	dst := create(t, e, sid("dst"))
	apply(t, dst, docs(0, 30, 1))
	flush(t, dst)
	before, old := info(t, dst), digest(t, dst, seqno.Unassigned)
	st, err := dst.StartStaging(ctx, "rec-abandon")
	if err != nil {
		t.Fatal(err)
	}
	stage(t, src, st)
	if err := st.DiscardOps(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendOps(ctx, docs(300, 5, 1)); err != nil {
		t.Fatal(err)
	}
	if err := st.Abandon(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(st.Dir()) {
		t.Fatal("the staging directory is left after Abandon")
	}
	if in := info(t, dst); in.Meta.Generation != before.Meta.Generation || in.Seq != before.Seq || digest(t, dst, seqno.Unassigned) != old {
		t.Fatalf("Abandon changed the copy: %+v", in)
	}
	res, err := dst.Sweep(ctx, nil)
	if err != nil || len(res.Staging) != 0 {
		t.Fatalf("Sweep after Abandon removed stagings %v (%v): Abandon left them", res.Staging, err)
	}
	// The id can stage again, from nothing.
	st, err = dst.StartStaging(ctx, "rec-abandon")
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(st.Dir()); len(entries) != 0 {
		t.Fatalf("a staging started again after Abandon holds %v", entries)
	}
}

// testStagingKept: a suspended staging, and what recoverd wrote in it,
// outlive a restart of the engine; Sweep removes it only once no running
// recovery names it.
func testStagingKept(t *testing.T, h Harness) {
	e, dir := fresh(t, h)
	dst := create(t, e, sid("dst"))
	st, err := dst.StartStaging(ctx, "rec-kept")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(st.Dir(), "seg_partial")
	if err := os.WriteFile(path, []byte("the first bytes of a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.Suspend(ctx); err != nil {
		t.Fatal(err)
	}
	e.Close()

	e = open(t, h, dir, Options{})
	tgt, _, err := e.OpenTarget(ctx, sid("dst"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := tgt.Sweep(ctx, map[string]bool{"rec-kept": true})
	if err != nil || len(res.Staging) != 0 || !exists(path) {
		t.Fatalf("Sweep naming the recovery removed %v (%v)", res.Staging, err)
	}
	st, err = tgt.StartStaging(ctx, "rec-kept")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(st.Dir(), "seg_partial")); err != nil || string(b) != "the first bytes of a file" {
		t.Fatalf("the staged bytes after a restart: %q, %v", b, err)
	}
	if res, err := tgt.Sweep(ctx, nil); err != nil || len(res.Staging) != 0 {
		t.Fatalf("Sweep removed %v (%v), a staging in use", res.Staging, err)
	}
	if err := st.Suspend(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = tgt.Sweep(ctx, nil)
	if err != nil || !slices.Equal(res.Staging, []string{"rec-kept"}) || exists(st.Dir()) {
		t.Fatalf("Sweep of a staging no recovery names removed %v (%v)", res.Staging, err)
	}
	if err := st.Abandon(ctx); err != nil && !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Abandon of a swept staging: %v", err)
	}
}
