package enginetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// The crash test publishes in a child process (the test binary, executed
// again with childDir set) that kills itself with SIGKILL at one of the
// engine's failpoints; the parent then reopens the engine and checks the
// copy: the old content or the new one, whole, and nothing of the other.

const (
	childDir   = "RECOVERD_ENGINETEST_CHILD_DIR"
	childPoint = "RECOVERD_ENGINETEST_CHILD_POINT"
	crashID    = "rec-crash"
)

// RunChild runs the crash test's child and exits when this process is one
// (its environment says so); otherwise it returns at once. Call it first
// in TestMain.
func RunChild(h Harness) {
	dir := os.Getenv(childDir)
	if dir == "" {
		return
	}
	if err := publishChild(h, dir, os.Getenv(childPoint)); err != nil {
		fmt.Fprintln(os.Stderr, "enginetest child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// publishChild stages the commit of src into dst and publishes it, dying
// at point.
func publishChild(h Harness, dir, point string) error {
	e, err := h.Open(nil, dir, Options{Failpoint: func(name string) {
		if name == point {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}})
	if err != nil {
		return err
	}
	defer e.Close()
	src, err := e.Shard(ctx, sid("src"))
	if err != nil {
		return err
	}
	dst, _, err := e.OpenTarget(ctx, sid("dst"))
	if err != nil {
		return err
	}
	st, err := dst.StartStaging(ctx, crashID)
	if err != nil {
		return err
	}
	md, err := stageErr(src, st)
	if err != nil {
		return err
	}
	if err := st.Publish(ctx, md.Files, md.Commit); err != nil {
		return err
	}
	return e.Close()
}

// runChild runs the child to point and reports whether it was killed.
func runChild(t *testing.T, dir, point string) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDir+"="+dir, childPoint+"="+point)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("the publishing child failed: %v\n%s", err, stderr.String())
	}
	return false
}

// testPublishKilled: a publish killed at each of the engine's failpoints
// leaves the old content or the new one, whole, as the failpoint says; what
// the dead process staged is resumable, then abandoned or swept; and the
// copy takes a publish again.
func testPublishKilled(t *testing.T, h Harness) {
	if len(h.PublishFailpoints) == 0 {
		t.Fatal("the harness names no failpoint of its Publish")
	}
	for _, fp := range append(slices.Clone(h.PublishFailpoints), Failpoint{Name: "", Committed: true}) {
		name := fp.Name
		if name == "" {
			name = "not-killed"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			e := open(t, h, dir, Options{})
			src := source(t, e, sid("src"))
			dst := create(t, e, sid("dst"))
			apply(t, dst, docs(0, 50, 1))
			flush(t, dst)
			oldDigest, newDigest := digest(t, dst, seqno.Unassigned), digest(t, src, seqno.Unassigned)
			srcInfo := info(t, src)
			e.Close()

			if killed := runChild(t, dir, fp.Name); killed != (fp.Name != "") {
				t.Fatalf("the child was killed: %v, at failpoint %q", killed, fp.Name)
			}
			e = open(t, h, dir, Options{})
			d, err := e.Shard(ctx, sid("dst"))
			if err != nil {
				t.Fatalf("reopen after the kill: %v", err)
			}
			got, in := digest(t, d, seqno.Unassigned), info(t, d)
			switch {
			case got != oldDigest && got != newDigest:
				t.Fatal("after the kill the copy is neither its old content nor the new one")
			case fp.Committed && got != newDigest:
				t.Fatalf("killed at %s, after the commit: the old content came back", fp.Name)
			case !fp.Committed && got != oldDigest:
				t.Fatalf("killed at %s, before the commit: the new content is visible", fp.Name)
			case fp.Committed && (in.Seq.MaxSeqNo != srcInfo.Seq.MaxSeqNo || in.Meta.Commit.HistoryUUID != srcInfo.Meta.Commit.HistoryUUID):
				t.Fatalf("the new content lacks its staged ops: %v, source %v", in.Seq, srcInfo.Seq)
			}
			tgt, _, err := e.OpenTarget(ctx, sid("dst"))
			if err != nil {
				t.Fatal(err)
			}
			CheckAfterKilledPublish(ctx, t, tgt, crashID, fp.Committed)
			if d := digest(t, tgt, seqno.Unassigned); d != got {
				t.Fatal("sweeping changed the copy")
			}
			// The copy takes a publish again.
			st, err := tgt.StartStaging(ctx, "rec-again")
			if err != nil {
				t.Fatal(err)
			}
			md := stage(t, shardOf(t, e, sid("src")), st)
			if err := st.Publish(ctx, md.Files, md.Commit); err != nil {
				t.Fatalf("publish after the kill: %v", err)
			}
			if digest(t, tgt, seqno.Unassigned) != newDigest {
				t.Fatal("the publish after the kill did not make the source's content")
			}
		})
	}
}

func shardOf(t testing.TB, e engine.Engine, id engine.ShardID) engine.Shard {
	t.Helper()
	s, err := e.Shard(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stageErr is stage for the child, which has no testing.T.
func stageErr(src engine.Shard, st engine.Staging) (engine.Metadata, error) {
	pin, err := src.Pin(ctx, engine.PinOptions{})
	if err != nil {
		return engine.Metadata{}, err
	}
	defer pin.Release(ctx)
	md := pin.Metadata()
	for _, f := range md.Files {
		path, err := pin.Path(f.Name)
		if err != nil {
			return md, err
		}
		if err := copyFileErr(path, filepath.Join(st.Dir(), f.Name)); err != nil {
			return md, err
		}
	}
	in, err := src.Info(ctx)
	if err != nil {
		return md, err
	}
	var ops []engine.Op
	err = src.ReadOps(ctx, engine.OpsRequest{Range: seqno.Range{From: md.Commit.LocalCheckpoint + 1, To: in.Seq.MaxSeqNo}, History: md.Commit.HistoryUUID},
		func(b []engine.Op) error { ops = append(ops, b...); return nil })
	if err != nil {
		return md, err
	}
	return md, st.AppendOps(ctx, ops)
}

// CheckAfterKilledPublish checks a copy whose publish of staging
// stagingID was killed, once its engine is open again: before the commit
// the recovery resumes (its staging is handed back, then abandoned here);
// then one sweep removes what the crash left, and a second finds nothing.
func CheckAfterKilledPublish(ctx context.Context, t testing.TB, tgt engine.Target, stagingID string, committed bool) {
	t.Helper()
	if !committed {
		st, err := tgt.StartStaging(ctx, stagingID)
		if err != nil {
			t.Fatalf("the staging of the killed publish: %v", err)
		}
		if err := st.Abandon(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tgt.Sweep(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if res, err := tgt.Sweep(ctx, nil); err != nil || len(res.Staging)+len(res.Temps)+len(res.Unreferenced) > 0 {
		t.Fatalf("a second sweep still removed %+v (%v)", res, err)
	}
}
