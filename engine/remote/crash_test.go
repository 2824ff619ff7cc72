package remote_test

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded/embeddedtest"
	"github.com/recoverd/recoverd/engine/enginetest"
	"github.com/recoverd/recoverd/engine/remote"
	"github.com/recoverd/recoverd/seqno"
)

// TestPublishKilledEngineProcess: the engine process (a child serving the
// reference engine, as shardd) dies of SIGKILL at each failpoint of a
// publish this process drives over the socket. The publish answers an
// error; the copy reopens at its old commit or its new one as the
// failpoint says; the staging of a publish killed before its commit is
// there to resume (its files staged, or moved by the engine, its own
// business); sweeping leaves nothing; and the dead engine's socket
// file is replaced by the next one.
func TestPublishKilledEngineProcess(t *testing.T) {
	for _, fp := range embeddedtest.Failpoints {
		t.Run(fp.Name, func(t *testing.T) {
			dir := t.TempDir()
			oldDigest, newDigest := setup(t, dir)
			sockDir, err := os.MkdirTemp("", "eng")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(sockDir)
			sock := filepath.Join(sockDir, "engine.sock")
			cmd, _, stderr := child(t, "engine", dir, sock, fp.Name)
			c := dialRetry(t, sock)
			st, md, err := stageCrash(c)
			if err != nil {
				t.Fatal(err)
			}
			perr := st.Publish(ctx, md.Files, md.Commit)
			if werr := cmd.Wait(); !killedBySIGKILL(werr) {
				t.Fatalf("the engine child was not killed at %s: %v\n%s", fp.Name, werr, stderr)
			}
			if perr == nil {
				t.Fatalf("the publish answered success though the engine died at %s", fp.Name)
			}
			if _, err := c.Shards(ctx); err == nil {
				t.Fatal("the client still answers after its engine died")
			}
			c.Close()

			want, other := oldDigest, newDigest
			if fp.Committed {
				want, other = newDigest, oldDigest
			}
			e := checkAfter(t, dir, want, other)
			tgt, _, err := e.OpenTarget(ctx, sid("dst"))
			if err != nil {
				t.Fatal(err)
			}
			enginetest.CheckAfterKilledPublish(ctx, t, tgt, crashID, fp.Committed)
			lis, err := remote.Listen(sock, 0o600)
			if err != nil {
				t.Fatalf("listen where the killed engine's socket is left: %v", err)
			}
			lis.Close()
			if _, err := os.Stat(sock); !os.IsNotExist(err) {
				t.Fatalf("the socket file is left after its listener closed: %v", err)
			}
		})
	}
}

// TestPublishKilledCaller: the caller (a child driving this process's
// engine over the socket, as recoverd) dies of SIGKILL after staging, or
// in the middle of its publish (the engine's failpoint kills it and waits
// for its death before going on). The engine lets go of everything the
// dead caller held (its pin released, its staging suspended); a publish
// under way runs to its end (the copy is at its new commit); a staging
// never published resumes, with its files, and publishes.
func TestPublishKilledCaller(t *testing.T) {
	for _, point := range []string{"staged", "publish.before-commit", "publish.after-commit"} {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			oldDigest, newDigest := setup(t, dir)
			var pid atomic.Int64
			dead := make(chan struct{})
			e := open(t, dir, enginetest.Options{Failpoint: func(name string) {
				if name == point && pid.Load() != 0 {
					syscall.Kill(int(pid.Load()), syscall.SIGKILL)
					<-dead
				}
			}})
			sock := filepath.Join(e.dir, "engine.sock")
			cmd, stdout, stderr := child(t, "caller", dir, sock, point)
			pid.Store(int64(cmd.Process.Pid))
			var werr error
			go func() { werr = cmd.Wait(); close(dead) }()
			if point == "staged" {
				if l := <-lines(stdout); l != "staged" {
					<-dead
					t.Fatalf("the caller child said %q: %v\n%s", l, werr, stderr)
				}
				cmd.Process.Signal(syscall.SIGKILL)
			}
			<-dead
			if !killedBySIGKILL(werr) {
				t.Fatalf("the caller child was not killed at %s: %v\n%s", point, werr, stderr)
			}
			eventually(t, "the dead caller's session ending", func() bool {
				sessions, pins, stagings := e.srv.Held()
				return sessions == 1 && pins == 0 && stagings == 0 // this process's own session only
			})
			dst, _, err := e.OpenTarget(ctx, sid("dst"))
			if err != nil {
				t.Fatal(err)
			}
			if point != "staged" {
				if digest(t, dst) != newDigest {
					t.Fatal("the publish its caller died in did not run to its end")
				}
				return
			}
			if digest(t, dst) != oldDigest {
				t.Fatal("a staging never published changed the copy")
			}
			// The recovery resumes: the files the dead caller staged are
			// there, its ops are staged again, and the publish goes through.
			st, md, err := stageResumed(e)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Publish(ctx, md.Files, md.Commit); err != nil {
				t.Fatal(err)
			}
			if digest(t, dst) != newDigest {
				t.Fatal("the resumed publish did not make the source's content")
			}
		})
	}
}

// stageResumed hands back the staging of the dead caller, checks its
// files are there, and stages the ops again.
func stageResumed(e engine.Engine) (engine.Staging, engine.Metadata, error) {
	src, err := e.Shard(ctx, sid("src"))
	if err != nil {
		return nil, engine.Metadata{}, err
	}
	in, err := src.Info(ctx)
	if err != nil {
		return nil, engine.Metadata{}, err
	}
	dst, _, err := e.OpenTarget(ctx, sid("dst"))
	if err != nil {
		return nil, engine.Metadata{}, err
	}
	st, err := dst.StartStaging(ctx, crashID)
	if err != nil {
		return nil, engine.Metadata{}, err
	}
	md := in.Meta
	for _, f := range md.Files {
		if _, err := os.Stat(filepath.Join(st.Dir(), f.Name)); err != nil {
			return nil, md, err
		}
	}
	var ops []engine.Op
	err = src.ReadOps(ctx, engine.OpsRequest{Range: seqno.Range{From: md.Commit.LocalCheckpoint + 1, To: in.Seq.MaxSeqNo}, History: md.Commit.HistoryUUID},
		func(b []engine.Op) error { ops = append(ops, b...); return nil })
	if err != nil {
		return nil, md, err
	}
	if err := st.DiscardOps(ctx); err != nil {
		return nil, md, err
	}
	return st, md, st.AppendOps(ctx, ops)
}
