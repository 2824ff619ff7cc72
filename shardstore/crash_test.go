package shardstore

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recoverd/recoverd/internal/fsutil"
	"github.com/recoverd/recoverd/seqno"
)

// The crash tests run the workload in a child process (this test binary,
// re-executed) that kills itself with SIGKILL at a named failpoint, or is
// killed by the parent at a random moment; the parent then reopens the shard
// and checks that nothing acknowledged was lost and nothing half-written is
// visible.

const (
	crashHelperEnv = "RECOVERD_SHARDSTORE_CRASH_HELPER"
	ackFile        = "acks"
)

type crashSpec struct {
	phase string // "write" or "publish"
	point string // failpoint to die at ("" = run until killed or done)
	hit   int    // die at the hit-th time the point is reached
}

func runCrashHelper() {
	dir := os.Getenv("CRASH_DIR")
	point := os.Getenv("CRASH_POINT")
	hit, _ := strconv.Atoi(os.Getenv("CRASH_HIT"))
	hits := 0
	opts := Options{Create: true, RetainOps: 50, MaxSegmentBytes: 8 << 10, Failpoint: func(name string) {
		if name == point {
			if hits++; hits == hit {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}}
	var err error
	switch os.Getenv(crashHelperEnv) {
	case "write":
		err = crashWriteWorkload(dir, opts)
	case "publish":
		err = crashPublishWorkload(dir, opts)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash helper:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// crashWriteWorkload indexes docs whose key number equals their seqno, and
// records each acknowledged batch durably in an ack file.
func crashWriteWorkload(dir string, opts Options) error {
	s, err := Open(dir, ShardID{Index: "idx", Shard: 0}, opts)
	if err != nil {
		return err
	}
	acks, err := os.OpenFile(filepath.Join(dir, ackFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	next := int(s.Stats().Seq.MaxSeqNo) + 1
	for round := 0; round < 40; round++ {
		docs := make([]Doc, 25)
		for i := range docs {
			docs[i] = Doc{Key: fmt.Sprintf("doc-%08d", next+i), Value: []byte(strings.Repeat("v", 40+i))}
		}
		ops, err := s.IndexBatch(ctx, docs)
		if err != nil {
			return err
		}
		if int(ops[0].SeqNo) != next {
			return fmt.Errorf("seqno %v for doc %d", ops[0].SeqNo, next)
		}
		next += len(docs)
		fmt.Fprintf(acks, "%d\n", next-1)
		if err := acks.Sync(); err != nil {
			return err
		}
		switch {
		case round%11 == 10:
			err = s.Merge()
		case round%4 == 3:
			err = s.Flush()
		}
		if err != nil {
			return err
		}
	}
	return s.Close()
}

// crashPublishWorkload stages another shard's files into idx/0 and
// publishes them; the digests before and after are recorded first.
func crashPublishWorkload(dir string, opts Options) error {
	srcDir := filepath.Join(dir, "src")
	src, err := Open(srcDir, ShardID{Index: "src", Shard: 0}, Options{Create: true, RetainOps: 1000})
	if err != nil {
		return err
	}
	defer src.Close()
	docs := make([]Doc, 300)
	for i := range docs {
		docs[i] = Doc{Key: fmt.Sprintf("src-%d", i), Value: []byte(strings.Repeat("s", i))}
	}
	if _, err := src.IndexBatch(ctx, docs); err != nil {
		return err
	}
	if err := src.Flush(); err != nil {
		return err
	}
	// Ops above the source's commit are staged with the files.
	for i := range docs[:50] {
		docs[i] = Doc{Key: fmt.Sprintf("src-late-%d", i), Value: []byte("late")}
	}
	if _, err := src.IndexBatch(ctx, docs[:50]); err != nil {
		return err
	}
	dst, err := Open(dir, ShardID{Index: "idx", Shard: 0}, opts)
	if err != nil {
		return err
	}
	oldDigest, err := dst.Digest(ctx)
	if err != nil {
		return err
	}
	newDigest, err := src.Digest(ctx)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "digests"), []byte(oldDigest+" "+newDigest), 0o644); err != nil {
		return err
	}
	st, err := dst.StartStaging("rec-crash")
	if err != nil {
		return err
	}
	files := copyShardFilesErr(src, st)
	if files == nil {
		return errors.New("staging failed")
	}
	commit := src.Metadata().Commit
	var late []Op
	if err := src.ReadOps(seqno.Range{From: commit.LocalCheckpoint + 1, To: src.Stats().Seq.MaxSeqNo}, func(op Op) error {
		late = append(late, op)
		return nil
	}); err != nil {
		return err
	}
	if err := st.AppendOps(late); err != nil {
		return err
	}
	if err := st.Publish(files, commit); err != nil {
		return err
	}
	return dst.Close()
}

func copyShardFilesErr(src *Shard, st *Staging) []FileMeta {
	ref, err := src.AcquireCommit()
	if err != nil {
		return nil
	}
	defer ref.Release()
	for _, fm := range ref.Metadata().Files {
		data, err := os.ReadFile(filepath.Join(src.Path(), fm.Name))
		if err != nil {
			return nil
		}
		if err := os.WriteFile(filepath.Join(st.Dir(), fm.Name), data, 0o644); err != nil {
			return nil
		}
	}
	return ref.Metadata().Files
}

// runCrash runs the helper and reports whether it was killed.
func runCrash(t *testing.T, dir string, spec crashSpec, killAfter time.Duration) (killed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+spec.phase, "CRASH_DIR="+dir,
		"CRASH_POINT="+spec.point, "CRASH_HIT="+strconv.Itoa(spec.hit))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if killAfter > 0 {
		timer := time.AfterFunc(killAfter, func() { cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
		t.Fatalf("helper failed: %v\n%s", err, stderr.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	return false
}

func lastAck(t *testing.T, dir string) int {
	f, err := os.Open(filepath.Join(dir, ackFile))
	if errors.Is(err, os.ErrNotExist) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	last := -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if n, err := strconv.Atoi(sc.Text()); err == nil {
			last = n
		}
	}
	return last
}

// checkAfterCrash reopens the shard and checks the invariants; it returns
// the digest.
func checkAfterCrash(t *testing.T, dir string) (string, Stats) {
	t.Helper()
	s, err := Open(dir, ShardID{Index: "idx", Shard: 0}, Options{RetainOps: 50})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer s.Close()
	shardDir := s.Path()
	for _, d := range []string{shardDir, filepath.Join(shardDir, oplogDir)} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if fsutil.IsTemp(e.Name()) || e.Name() == stagingDir {
				t.Errorf("%s left in %s after reopen", e.Name(), d)
			}
		}
	}
	st := s.Stats()
	if ack := lastAck(t, dir); seqno.SeqNo(ack) > st.Seq.LocalCheckpoint {
		t.Fatalf("acknowledged op %d lost: checkpoint %v", ack, st.Seq.LocalCheckpoint)
	}
	present := map[string]bool{}
	if err := s.Scan(ctx, func(k string, _ []byte, _ seqno.SeqNo) error { present[k] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for i := 0; i <= int(st.Seq.LocalCheckpoint) && !present["src-0"]; i++ { // src-0: the published copy
		if key := fmt.Sprintf("doc-%08d", i); !present[key] {
			t.Fatalf("%s below checkpoint %v missing", key, st.Seq.LocalCheckpoint)
		}
	}
	for _, f := range s.Metadata().Files {
		if err := verifyFile(filepath.Join(shardDir, f.Name), f); err != nil {
			t.Fatalf("committed file damaged: %v", err)
		}
	}
	d, err := s.Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return d, st
}

func TestCrashDuringWrites(t *testing.T) {
	dir := t.TempDir()
	points := []crashSpec{
		{"write", "oplog.before-fsync", 3},
		{"write", "flush.segment-written", 1},
		{"write", "flush.before-commit", 2},
		{"write", "flush.after-commit", 1},
		{"write", "merge.outputs-written", 1},
		{"write", "merge.before-commit", 1},
		{"write", "oplog.before-fsync", 17},
		{"write", "flush.before-commit", 5},
		{"write", "merge.before-commit", 2},
		{"write", "flush.segment-written", 6},
	}
	kills := 0
	for i, p := range points {
		if runCrash(t, dir, p, 0) {
			kills++
		}
		d1, st := checkAfterCrash(t, dir)
		d2, _ := checkAfterCrash(t, dir)
		if d1 != d2 {
			t.Fatalf("run %d (%s): digest changed between two reopens", i, p.point)
		}
		t.Logf("run %d killed at %s#%d: checkpoint %v, %d segments", i, p.point, p.hit, st.Seq.LocalCheckpoint, st.Segments)
	}
	if kills < len(points)-1 {
		t.Fatalf("only %d of %d runs reached their failpoint", kills, len(points))
	}
	// Kills at random moments, from outside.
	r := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 8; i++ {
		runCrash(t, dir, crashSpec{phase: "write"}, time.Duration(5+r.IntN(60))*time.Millisecond)
		checkAfterCrash(t, dir)
	}
}

func TestCrashDuringPublish(t *testing.T) {
	for _, point := range []string{"publish.before-rename", "publish.files-moved", "publish.before-commit", "publish.after-commit", ""} {
		t.Run(strings.TrimPrefix(point, "publish."), func(t *testing.T) {
			dir := t.TempDir()
			runCrash(t, dir, crashSpec{phase: "write", point: "flush.after-commit", hit: 3}, 0)
			killed := runCrash(t, dir, crashSpec{phase: "publish", point: point, hit: 1}, 0)
			if killed != (point != "") {
				t.Fatalf("killed = %v at %q", killed, point)
			}
			b, err := os.ReadFile(filepath.Join(dir, "digests"))
			if err != nil {
				t.Fatal(err)
			}
			old, published, _ := strings.Cut(string(b), " ")
			got, _ := checkAfterCrash(t, dir)
			switch {
			case got == old:
				if point == "publish.after-commit" || point == "" {
					t.Fatal("publish was durable but the old content came back")
				}
			case got == published:
				if point == "publish.before-rename" || point == "publish.files-moved" {
					t.Fatal("new content visible before its commit point")
				}
			default:
				t.Fatal("after the crash the shard is neither the old one nor the new one")
			}
		})
	}
}
