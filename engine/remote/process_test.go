package remote_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded/embeddedtest"
	"github.com/recoverd/recoverd/engine/enginetest"
	"github.com/recoverd/recoverd/engine/remote"
	"github.com/recoverd/recoverd/seqno"
)

// The crash tests of two processes: the engine serving in one, the caller
// driving it in another, and either killed with SIGKILL mid-publish. The
// test binary, executed again with roleEnv set, is the child.
const (
	roleEnv  = "RECOVERD_REMOTE_TEST_ROLE" // "engine" or "caller"
	dirEnv   = "RECOVERD_REMOTE_TEST_DIR"
	sockEnv  = "RECOVERD_REMOTE_TEST_SOCK"
	pointEnv = "RECOVERD_REMOTE_TEST_POINT"
	crashID  = "rec-crash"
)

// runProcessChild runs this process as a child and exits, when its
// environment says it is one.
func runProcessChild() {
	var err error
	switch os.Getenv(roleEnv) {
	case "":
		return
	case "engine":
		err = engineChild(os.Getenv(dirEnv), os.Getenv(sockEnv), os.Getenv(pointEnv))
	case "caller":
		err = callerChild(os.Getenv(sockEnv), os.Getenv(pointEnv))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// engineChild serves the reference engine on dir at sock, as shardd does,
// and kills itself at failpoint point.
func engineChild(dir, sock, point string) error {
	emb, err := embeddedtest.Open(dir, enginetest.Options{Failpoint: func(name string) {
		if name == point {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}})
	if err != nil {
		return err
	}
	lis, err := remote.Listen(sock, 0o600)
	if err != nil {
		return err
	}
	return remote.NewServer(emb, slog.New(slog.DiscardHandler)).Serve(lis)
}

// callerChild stages the commit of src into dst, as recoverd does, and
// publishes it; with point "staged" it says so on stdout and waits to be
// killed instead.
func callerChild(sock, point string) error {
	c, err := remote.Dial(ctx, "unix://"+sock)
	if err != nil {
		return err
	}
	st, md, err := stageCrash(c)
	if err != nil {
		return err
	}
	if point == "staged" {
		fmt.Println("staged")
		select {}
	}
	return st.Publish(ctx, md.Files, md.Commit)
}

// stageCrash opens dst as a target and stages the commit of src in the
// staging crashID: the files copied from the pin's paths into its
// directory, the ops above the commit appended.
func stageCrash(e engine.Engine) (engine.Staging, engine.Metadata, error) {
	src, err := e.Shard(ctx, sid("src"))
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
	pin, err := src.Pin(ctx, engine.PinOptions{TTL: time.Minute})
	if err != nil {
		return nil, engine.Metadata{}, err
	}
	md := pin.Metadata()
	for _, f := range md.Files {
		path, err := pin.Path(f.Name)
		if err != nil {
			return nil, md, err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, md, err
		}
		if err := writeSync(filepath.Join(st.Dir(), f.Name), b); err != nil {
			return nil, md, err
		}
	}
	in, err := src.Info(ctx)
	if err != nil {
		return nil, md, err
	}
	var ops []engine.Op
	err = src.ReadOps(ctx, engine.OpsRequest{Range: seqno.Range{From: md.Commit.LocalCheckpoint + 1, To: in.Seq.MaxSeqNo}, History: md.Commit.HistoryUUID},
		func(b []engine.Op) error { ops = append(ops, b...); return nil })
	if err != nil {
		return nil, md, err
	}
	return st, md, st.AppendOps(ctx, ops)
}

func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	return errors.Join(err, f.Sync(), f.Close())
}

func sid(index string) engine.ShardID { return engine.ShardID{Index: index, Shard: 0} }

// child starts the test binary as a child of role.
func child(t *testing.T, role, dir, sock, point string) (*exec.Cmd, io.Reader, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, dirEnv+"="+dir, sockEnv+"="+sock, pointEnv+"="+point)
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, stdout, stderr
}

// killedBySIGKILL reports whether a waited command died of SIGKILL.
func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ws, ok := ee.Sys().(syscall.WaitStatus)
		return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
	}
	return false
}

// dialRetry dials sock until the engine child answers.
func dialRetry(t *testing.T, sock string) *remote.Client {
	t.Helper()
	var c *remote.Client
	eventually(t, "the engine child answering", func() bool {
		var err error
		c, err = remote.Dial(ctx, "unix://"+sock)
		return err == nil
	})
	return c
}

// setup makes src (files, and ops above its commit) and dst (an older
// content of another history) on dir, and returns their digests.
func setup(t *testing.T, dir string) (oldDigest, newDigest string) {
	t.Helper()
	e := open(t, dir, enginetest.Options{})
	defer e.Close()
	src := create(t, e, sid("src"))
	apply(t, src, 0, 200)
	flush(t, src)
	apply(t, src, 200, 40)
	dst := create(t, e, sid("dst"))
	apply(t, dst, 0, 30)
	flush(t, dst)
	return digest(t, dst), digest(t, src)
}

func open(t *testing.T, dir string, o enginetest.Options) *served {
	t.Helper()
	emb, err := embeddedtest.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	s, err := serve(emb)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func create(t *testing.T, e engine.Engine, id engine.ShardID) engine.Target {
	t.Helper()
	tgt, _, err := e.OpenTarget(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	st, err := tgt.StartStaging(ctx, "create")
	if err != nil {
		t.Fatal(err)
	}
	v := e.Version()
	if err := st.Publish(ctx, nil, engine.CommitData{HistoryUUID: uuid.NewString(), MaxSeqNo: -1, LocalCheckpoint: -1, GlobalCheckpoint: -1,
		PrimaryTerm: 1, WriterVersion: v.Writer, FormatVersion: v.MaxFormat}); err != nil {
		t.Fatal(err)
	}
	return tgt
}

func apply(t *testing.T, tgt engine.Target, from, n int) {
	t.Helper()
	ops := make([]engine.Op, n)
	for i := range ops {
		s := seqno.SeqNo(from + i)
		ops[i] = engine.Op{Key: fmt.Sprintf("doc-%d", s), SeqNo: s, PrimaryTerm: 1, Value: []byte(fmt.Sprint("value ", s))}
	}
	if err := tgt.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
}

func flush(t *testing.T, tgt engine.Target) {
	t.Helper()
	if err := tgt.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func digest(t *testing.T, s engine.Shard) string {
	t.Helper()
	d, _, err := s.DigestAt(ctx, nil, seqno.Unassigned)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkAfter reopens dir and checks dst holds want, whole, and that what
// the dead process left sweeps away to nothing.
func checkAfter(t *testing.T, dir, want, other string) engine.Engine {
	t.Helper()
	e := open(t, dir, enginetest.Options{})
	dst, _, err := e.OpenTarget(ctx, sid("dst"))
	if err != nil {
		t.Fatal(err)
	}
	switch got := digest(t, dst); got {
	case want:
	case other:
		t.Fatal("after the kill the copy holds the other content than the failpoint says")
	default:
		t.Fatal("after the kill the copy is neither its old content nor the new one")
	}
	return e
}

// lines reads what a child prints, line by line.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 8)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}
