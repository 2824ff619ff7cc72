package shardstore

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func exists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Stat(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestSweepRemovesLeftoversOnly(t *testing.T) {
	src := openNew(t, t.TempDir(), Options{})
	mustIndex(t, src, 50, 0)
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	s := openNew(t, t.TempDir(), Options{})
	mustIndex(t, s, 100, 0)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	ref, err := s.AcquireCommit() // a pinned commit, then a merge replaces it
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Release()
	mustIndex(t, s, 100, 100)
	if err := s.Merge(); err != nil {
		t.Fatal(err)
	}
	want := digest(t, s)
	dir := s.Path()

	// A staging open in this process, one of a running recovery not (yet)
	// open here, and one nobody owns.
	live, err := s.StartStaging("rec-live")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abandon()
	staged := copyShardFiles(t, src, live)
	for _, id := range []string{"rec-running", "rec-dead"} {
		os.MkdirAll(filepath.Join(dir, stagingDir, id), 0o755)
		os.WriteFile(filepath.Join(dir, stagingDir, id, "seg_x"), []byte("partial"), 0o644)
	}
	old := time.Now().Add(-2 * SweepTempAge)
	os.WriteFile(filepath.Join(dir, ".tmp-commit_9-1"), []byte("half"), 0o644)
	os.Chtimes(filepath.Join(dir, ".tmp-commit_9-1"), old, old)
	os.WriteFile(filepath.Join(dir, ".tmp-leases-2"), []byte("in progress"), 0o644) // young
	os.WriteFile(filepath.Join(dir, "seg_99999999_orphan"), []byte("orphan"), 0o644)
	os.WriteFile(filepath.Join(dir, "README.operator"), []byte("keep me"), 0o644)
	os.MkdirAll(filepath.Join(dir, oplogDir, "99999999"), 0o755)

	res, err := s.Sweep(map[string]bool{"rec-running": true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Staging, []string{"rec-dead"}) {
		t.Errorf("staging removed %v, want [rec-dead]", res.Staging)
	}
	if !slices.Equal(res.Temps, []string{".tmp-commit_9-1"}) {
		t.Errorf("temps removed %v", res.Temps)
	}
	if !slices.Contains(res.Unreferenced, "seg_99999999_orphan") || !slices.Contains(res.Unreferenced, filepath.Join(oplogDir, "99999999")) {
		t.Errorf("unreferenced removed %v", res.Unreferenced)
	}
	for _, gone := range []string{"staging/rec-dead", ".tmp-commit_9-1", "seg_99999999_orphan", "oplog/99999999"} {
		if exists(t, filepath.Join(dir, gone)) {
			t.Errorf("%s survived the sweep", gone)
		}
	}
	for _, kept := range []string{"staging/rec-live", "staging/rec-running/seg_x", ".tmp-leases-2", "README.operator"} {
		if !exists(t, filepath.Join(dir, kept)) {
			t.Errorf("sweep removed %s", kept)
		}
	}
	for _, fm := range append(ref.Metadata().Files, s.Metadata().Files...) {
		if err := verifyFile(filepath.Join(dir, fm.Name), fm); err != nil {
			t.Errorf("referenced or pinned file damaged: %v", err)
		}
	}
	for _, fm := range staged {
		if err := verifyFile(filepath.Join(live.Dir(), fm.Name), fm); err != nil {
			t.Errorf("staged file of an open staging damaged: %v", err)
		}
	}
	if digest(t, s) != want {
		t.Fatal("content changed")
	}
	// Released, the pinned files go at the next sweep (or at the release).
	ref.Release()
	res, err = s.Sweep(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Staging, []string{"rec-running"}) {
		t.Errorf("second sweep removed staging %v", res.Staging)
	}
	for _, fm := range ref.Metadata().Files {
		if exists(t, filepath.Join(dir, fm.Name)) && !slices.ContainsFunc(s.Metadata().Files, func(f FileMeta) bool { return f.Name == fm.Name }) {
			t.Errorf("released file %s kept", fm.Name)
		}
	}
	// The open staging still publishes.
	if err := live.Publish(staged, src.Metadata().Commit); err != nil {
		t.Fatal(err)
	}
	if digest(t, s) != digest(t, src) {
		t.Fatal("published copy differs from its source")
	}
}

// A sweep racing a recovery that stages a file never removes it.
func TestSweepRacingStaging(t *testing.T) {
	src := openNew(t, t.TempDir(), Options{})
	mustIndex(t, src, 2000, 0)
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	s := openNew(t, t.TempDir(), Options{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sweeps int
	var sweepErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := s.Sweep(nil)
			if err != nil {
				sweepErr = err
				return
			}
			if len(res.Staging) > 0 {
				sweepErr = errors.New("sweep removed staging " + res.Staging[0])
				return
			}
			sweeps++
		}
	}()
	for i := range 20 {
		st, err := s.StartStaging("rec-" + string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		files := copyShardFiles(t, src, st)
		if i%2 == 0 {
			if err := st.Abandon(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := st.Publish(files, src.Metadata().Commit); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if sweepErr != nil {
		t.Fatal(sweepErr)
	}
	if sweeps == 0 {
		t.Fatal("no sweep ran")
	}
	if digest(t, s) != digest(t, src) {
		t.Fatal("copy differs from its source")
	}
}

func TestSweepClosedShard(t *testing.T) {
	s := openNew(t, t.TempDir(), Options{})
	s.Close()
	if _, err := s.Sweep(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("sweep of a closed shard: %v", err)
	}
}
