package shardstore

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// Staged files are fsynced one by one, each error checked, before the
// commit that names them; an op becomes visible only once its op log
// fsync returned. The fsync errors are injected (Options.Fault): a real
// disk cannot be made to fail on demand.

var errInjectedEIO = &os.PathError{Op: "fsync", Path: "injected", Err: syscall.EIO}

func TestStagedFileFsyncErrorFailsPublishAndKeepsTheOldShard(t *testing.T) {
	src := openNew(t, t.TempDir(), Options{})
	mustIndex(t, src, 300, 0)
	if err := src.Flush(); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		synced []string
		fail   atomic.Bool
	)
	dst := openNew(t, t.TempDir(), Options{Fault: func(point, path string) error {
		if point != "staging.fsync" {
			return nil
		}
		mu.Lock()
		synced = append(synced, filepath.Base(path))
		mu.Unlock()
		if fail.Load() {
			return errInjectedEIO
		}
		return nil
	}})
	mustIndex(t, dst, 20, 5000)
	if err := dst.Flush(); err != nil {
		t.Fatal(err)
	}
	oldDigest, oldMeta := digest(t, dst), dst.Metadata()

	st, err := dst.StartStaging("rec-fsync")
	if err != nil {
		t.Fatal(err)
	}
	files := copyShardFiles(t, src, st)
	fail.Store(true)
	err = st.Publish(files, src.Metadata().Commit)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("Publish = %v, want the fsync error of a staged file", err)
	}
	if digest(t, dst) != oldDigest || dst.Metadata().Generation != oldMeta.Generation {
		t.Fatal("a publish whose fsync failed changed the shard")
	}
	dst = reopen(t, dst, Options{})
	if digest(t, dst) != oldDigest {
		t.Fatal("the old shard is not what reopens")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, f := range files {
		found := false
		for _, s := range synced {
			found = found || s == f.Name
		}
		if !found {
			t.Errorf("staged file %s was not fsynced on its own (fsynced: %v)", f.Name, synced)
		}
	}
}
