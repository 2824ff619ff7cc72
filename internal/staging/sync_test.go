package staging

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/recoverd/recoverd/engine"
)

// fsyncCounter is a Fault hook counting fsyncs per file, failing those
// (and the syncfs) of the files in fail.
type fsyncCounter struct {
	mu    sync.Mutex
	count map[string]int
	fail  map[string]bool
}

func (c *fsyncCounter) hook(point, path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := filepath.Base(path)
	c.count[point+" "+name]++
	if c.fail[name] && point != "staging.open-direct" {
		return &os.PathError{Op: point, Path: path, Err: syscall.EIO}
	}
	return nil
}

func (c *fsyncCounter) of(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count["staging.fsync "+name]
}

func openCounted(t *testing.T, fail ...string) (*Area, *fsyncCounter) {
	t.Helper()
	c := &fsyncCounter{count: map[string]int{}, fail: map[string]bool{}}
	for _, f := range fail {
		c.fail[f] = true
	}
	a, err := Open("rec", t.TempDir(), Options{Fault: c.hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a, c
}

// stageBehind stages a whole file in order, verifies it and starts its
// fsync behind, on one handle, as a transfer does.
func stageBehind(t *testing.T, a *Area, f engine.FileMeta, data []byte) {
	t.Helper()
	sf, err := a.CreateFile(f)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	if _, err := sf.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	sf.MarkGood(f.Length)
	if err := sf.Verify(); err != nil {
		t.Fatal(err)
	}
	sf.SyncBehind()
}

// A large file fsynced as soon as it was verified is not fsynced again by
// Sync; a small one is left to Sync.
func TestSyncBehindSparesSync(t *testing.T) {
	a, c := openCounted(t)
	big, bd := file("seg_big", syncBehindFrom, 1)
	small, sd := file("seg_small", 10_000, 2)
	stageBehind(t, a, big, bd)
	stageBehind(t, a, small, sd)
	a.behind.Wait()
	if c.of(big.Name) != 1 || c.of(small.Name) != 0 {
		t.Fatalf("fsyncs behind: big %d, small %d; want 1 and 0", c.of(big.Name), c.of(small.Name))
	}
	if err := a.Sync([]engine.FileMeta{big, small}); err != nil {
		t.Fatal(err)
	}
	if c.of(big.Name) != 1 || c.of(small.Name) != 1 {
		t.Fatalf("fsyncs: big %d, small %d; want each once", c.of(big.Name), c.of(small.Name))
	}
}

// An fsync behind that fails fails Sync, with its error.
func TestSyncBehindErrorFailsSync(t *testing.T) {
	a, c := openCounted(t, "seg_big")
	big, bd := file("seg_big", syncBehindFrom, 1)
	stageBehind(t, a, big, bd)
	if err := a.Sync([]engine.FileMeta{big}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync after a failed fsync behind = %v, want EIO", err)
	}
	if c.of(big.Name) != 1 {
		t.Fatalf("%d fsyncs of the file", c.of(big.Name))
	}
}

// A file staged again after its fsync behind (cut and rewritten) is not
// durable on that fsync's word: Sync fsyncs it again.
func TestFileRewrittenAfterSyncBehindIsSyncedAgain(t *testing.T) {
	a, c := openCounted(t)
	big, bd := file("seg_big", syncBehindFrom, 1)
	stageBehind(t, a, big, bd)
	a.behind.Wait()
	sf, err := a.CreateFile(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := sf.Truncate(0); err != nil {
		t.Fatal(err)
	}
	sf.Close()
	stage(t, a, big, bd, big.Length)
	if err := a.Sync([]engine.FileMeta{big}); err != nil {
		t.Fatal(err)
	}
	if c.of(big.Name) != 2 {
		t.Fatalf("%d fsyncs of a file rewritten after its fsync behind, want 2", c.of(big.Name))
	}
}

// Small files verified behind the transfer start a syncfs every
// syncfsBehindEvery bytes; one that fails fails Sync.
func TestSmallFilesSyncfsBehind(t *testing.T) {
	for _, fail := range []bool{false, true} {
		a, c := openCounted(t)
		c.fail[filepath.Base(a.Dir())] = fail // the syncfs's path is the staging directory
		const size = 4_000_000
		var files []engine.FileMeta
		for i := range syncfsBehindEvery/size + 1 {
			f, data := file(fmt.Sprintf("seg_%02d", i), size, byte(i))
			stageBehind(t, a, f, data)
			files = append(files, f)
		}
		a.behind.Wait()
		c.mu.Lock()
		n := c.count["staging.syncfs "+filepath.Base(a.Dir())]
		c.mu.Unlock()
		if n != 1 {
			t.Fatalf("%d syncfs behind after %d bytes of small files, want 1", n, len(files)*size)
		}
		err := a.Sync(files)
		if fail != errors.Is(err, syscall.EIO) {
			t.Fatalf("Sync after a syncfs behind (failing: %v) = %v", fail, err)
		}
	}
}
