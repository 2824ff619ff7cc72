package staging

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/recoverd/recoverd/engine"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// file returns n bytes of content ending in their CRC32C, as every file of
// the contract does, and its metadata.
func file(name string, n int, seed byte) (engine.FileMeta, []byte) {
	b := make([]byte, n)
	for i := range b[:n-4] {
		b[i] = byte(i*31) ^ seed ^ byte(i>>11)
	}
	sum := crc32.Checksum(b[:n-4], castagnoli)
	binary.LittleEndian.PutUint32(b[n-4:], sum)
	return engine.FileMeta{Name: name, Length: int64(n), CRC32C: sum, WriterUUID: fmt.Sprintf("w%d", seed)}, b
}

func open(t *testing.T, dir string) *Area {
	t.Helper()
	a, err := Open("rec", dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// stage writes the first n bytes of a file in order, in 256 KiB chunks
// each marked checked, as a peer transfer does.
func stage(t *testing.T, a *Area, f engine.FileMeta, data []byte, n int64) {
	t.Helper()
	sf, err := a.CreateFile(f)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	for off := sf.Good(); off < n; off += 256 << 10 {
		end := min(off+256<<10, n)
		if _, err := sf.WriteAt(data[off:end], off); err != nil {
			t.Fatal(err)
		}
		sf.MarkGood(end)
	}
	if n == f.Length {
		if err := sf.Verify(); err != nil {
			t.Fatal(err)
		}
	}
}

// A file staged partly by one attempt of a recovery keeps its checked
// prefix for the next attempt of the same recovery (a re-plan); bytes past
// it do not count; Truncate shrinks it.
func TestCheckedPrefixAcrossAttempts(t *testing.T) {
	fm, data := file("seg_1", 300<<10, 1)
	a := open(t, t.TempDir())
	sf, err := a.CreateFile(fm)
	if err != nil {
		t.Fatal(err)
	}
	half := int64(len(data) / 2)
	if _, err := sf.WriteAt(data[:half], 0); err != nil {
		t.Fatal(err)
	}
	if sf.Good() != 0 {
		t.Fatal("bytes written count as checked before MarkGood")
	}
	sf.MarkGood(half)
	if _, err := sf.WriteAt([]byte("garbage"), half); err != nil { // a chunk that failed its check
		t.Fatal(err)
	}
	sf.Close()
	sf, err = a.CreateFile(fm)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	if got := sf.Good(); got != half {
		t.Fatalf("checked prefix %d after a new attempt, want %d", got, half)
	}
	if _, err := sf.WriteAt(data[half:], half); err != nil {
		t.Fatal(err)
	}
	sf.MarkGood(int64(len(data)))
	if err := sf.Verify(); err != nil {
		t.Fatal(err)
	}
	if !a.Verified(fm) || len(a.Files()) != 1 {
		t.Fatalf("verified %v, files %v", a.Verified(fm), a.Files())
	}
	if err := sf.Truncate(10); err != nil {
		t.Fatal(err)
	}
	if got := sf.Good(); got != 10 || a.Verified(fm) {
		t.Fatalf("after Truncate(10): checked prefix %d, verified %v", got, a.Verified(fm))
	}
	other := fm
	other.CRC32C++
	if _, err := a.CreateFile(other); err == nil {
		t.Fatal("a file staged again with other metadata")
	}
	if _, err := a.CreateFile(engine.FileMeta{Name: "../x", Length: 10}); !errors.Is(err, engine.ErrInvalidName) {
		t.Fatalf("a name with a separator: %v", err)
	}
	if _, err := sf.WriteAt([]byte("xx"), fm.Length-1); err == nil {
		t.Fatal("a write past the file's length")
	}
}

// After a restart, the area resumes: the complete file that reads back
// whole counts as verified, the partial one keeps the prefix its progress
// record names (not the bytes written after it), a file whose recorded
// prefix was damaged starts over, a file the plan does not list goes, and
// the engine's own entries stay.
func TestResumeAfterARestart(t *testing.T) {
	whole, wd := file("seg_whole", 3*progressEvery, 1)
	partial, pd := file("seg_partial", 3*progressEvery, 2)
	damaged, dd := file("seg_damaged", 3*progressEvery, 3)
	files := []engine.FileMeta{whole, partial, damaged}
	data := map[string][]byte{whole.Name: wd, partial.Name: pd, damaged.Name: dd}
	dir := t.TempDir()
	a := open(t, dir)
	stage(t, a, whole, wd, whole.Length)
	stage(t, a, partial, pd, 2*progressEvery+progressEvery/2) // recorded at 2*progressEvery
	stage(t, a, damaged, dd, 2*progressEvery)
	// The process dies here: no Suspend. Then what a power loss can do to
	// the recorded prefix of one file, a file the next plan does not
	// list, a temp file, and the engine's staged ops.
	f, err := os.OpenFile(filepath.Join(dir, damaged.Name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{dd[1000] ^ 0xff}, 1000)
	f.Close()
	os.WriteFile(filepath.Join(dir, "seg_not_in_the_plan"), []byte("left"), 0o644)
	os.WriteFile(filepath.Join(dir, ".tmp-x"), []byte("temp"), 0o644)
	os.MkdirAll(filepath.Join(dir, "ops.staged"), 0o755)
	os.WriteFile(filepath.Join(dir, "ops.staged", "1.log"), []byte("engine"), 0o644)

	a = open(t, dir)
	if len(a.Files()) != 0 || a.Verified(whole) {
		t.Fatal("files of the earlier process count before Keep checked them")
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-x")); !os.IsNotExist(err) {
		t.Fatalf("a temp file survived Open: %v", err)
	}
	kept, keptBytes, err := a.Keep(files)
	if err != nil {
		t.Fatal(err)
	}
	if want := whole.Length + 2*progressEvery; kept != 2 || keptBytes != want {
		t.Fatalf("Keep kept %d files, %d bytes; want 2 files, %d bytes (the whole file and the recorded prefix)", kept, keptBytes, want)
	}
	if !a.Verified(whole) {
		t.Fatal("the complete file is not verified after Keep")
	}
	if _, err := os.Stat(filepath.Join(dir, "seg_not_in_the_plan")); !os.IsNotExist(err) {
		t.Fatalf("a staged file the plan does not list survived Keep: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ops.staged", "1.log")); err != nil || string(b) != "engine" {
		t.Fatalf("the engine's staged ops were touched: %q, %v", b, err)
	}
	for _, c := range []struct {
		f    engine.FileMeta
		good int64
	}{{whole, whole.Length}, {partial, 2 * progressEvery}, {damaged, 0}} {
		sf, err := a.CreateFile(c.f)
		if err != nil {
			t.Fatal(err)
		}
		size, _ := sf.Size()
		if c.f != whole && (sf.Good() != c.good || size != c.good) {
			t.Fatalf("%s: resumes at %d with %d bytes present, want %d", c.f.Name, sf.Good(), size, c.good)
		}
		sf.Close()
		stage(t, a, c.f, data[c.f.Name], c.f.Length)
	}
	for _, f := range files {
		if b, _ := os.ReadFile(filepath.Join(dir, f.Name)); !slices.Equal(b, data[f.Name]) {
			t.Fatalf("%s differs from its source after the resume", f.Name)
		}
	}
	if err := a.Sync(files); err != nil {
		t.Fatal(err)
	}
}

// Suspend records the exact prefix of a partial file, even one below the
// 1 MiB between two records.
func TestSuspendRecordsPartialFiles(t *testing.T) {
	f, data := file("seg_1", 3<<20, 1)
	dir := t.TempDir()
	a := open(t, dir)
	stage(t, a, f, data, 768<<10)
	a.Suspend()
	if _, err := a.CreateFile(f); !errors.Is(err, ErrFinished) {
		t.Fatalf("CreateFile after Suspend: %v", err)
	}
	a = open(t, dir)
	if _, n, err := a.Keep([]engine.FileMeta{f}); err != nil || n != 768<<10 {
		t.Fatalf("Keep after Suspend: %d bytes, %v; want the %d bytes staged", n, err, 768<<10)
	}
	// A record of another file of the same name is not trusted.
	a.Suspend()
	other, _ := file("seg_1", 3<<20, 9)
	a = open(t, dir)
	if _, n, err := a.Keep([]engine.FileMeta{other}); err != nil || n != 0 {
		t.Fatalf("Keep for other content of the same name: %d bytes, %v", n, err)
	}
}

// Verify checks a file written in order from its running checksum and any
// other by reading it back; both must catch a flipped byte in the body or
// the footer.
func TestVerifyCatchesCorruptionWrittenInOrderOrNot(t *testing.T) {
	fm, data := file("seg_1", 100_000, 5)
	for _, tc := range []struct {
		name    string
		corrupt int // byte flipped in what is handed to WriteAt, -1 none
		reverse bool
	}{
		{"in order", -1, false}, {"in order, corrupt body", 10, false}, {"in order, corrupt footer", len(data) - 2, false},
		{"out of order", -1, true}, {"out of order, corrupt", 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := open(t, t.TempDir())
			sf, err := a.CreateFile(fm)
			if err != nil {
				t.Fatal(err)
			}
			defer sf.Close()
			b := slices.Clone(data)
			if tc.corrupt >= 0 {
				b[tc.corrupt] ^= 0x40
			}
			var offs []int
			for off := 0; off < len(b); off += 1000 {
				offs = append(offs, off)
			}
			if tc.reverse {
				slices.Reverse(offs)
			}
			for _, off := range offs {
				if _, err := sf.WriteAt(b[off:min(off+1000, len(b))], int64(off)); err != nil {
					t.Fatal(err)
				}
			}
			if err := sf.Verify(); (tc.corrupt >= 0) != errors.Is(err, engine.ErrCorrupt) {
				t.Fatalf("Verify = %v", err)
			}
		})
	}
}

// Sync fsyncs every staged file on a descriptor of its own, and an fsync
// error fails it (injected: a real disk cannot be made to fail on demand).
func TestSyncFsyncsEachFileAndReportsItsError(t *testing.T) {
	var (
		mu     sync.Mutex
		synced []string
		fail   bool
	)
	a, err := Open("rec", t.TempDir(), Options{Fault: func(point, path string) error {
		mu.Lock()
		defer mu.Unlock()
		synced = append(synced, point+" "+filepath.Base(path))
		if fail {
			return &os.PathError{Op: "fsync", Path: path, Err: syscall.EIO}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	var files []engine.FileMeta
	for i := range 20 {
		f, data := file(fmt.Sprintf("seg_%02d", i), 10_000, byte(i))
		stage(t, a, f, data, f.Length)
		files = append(files, f)
	}
	kept := engine.FileMeta{Name: "seg_kept", Length: 100, CRC32C: 1} // not staged: the target's own
	if err := a.Sync(append(files, kept)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	slices.Sort(synced)
	want := make([]string, len(files))
	for i, f := range files {
		want[i] = "staging.fsync " + f.Name
	}
	if !slices.Equal(synced, want) {
		t.Fatalf("fsynced %v, want each staged file once", synced)
	}
	fail = true
	mu.Unlock()
	if err := a.Sync(files); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync with a failing fsync = %v, want EIO", err)
	}
}

// TestSyncOfManyFilesIsOneSyncfs: from syncfsFrom staged files on, Sync is
// one syncfs of the staging filesystem, not an fsync per file, and its
// error is returned.
func TestSyncOfManyFilesIsOneSyncfs(t *testing.T) {
	var (
		mu    sync.Mutex
		calls []string
		fail  bool
	)
	a, err := Open("rec", t.TempDir(), Options{Fault: func(point, path string) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, point)
		if fail {
			return &os.PathError{Op: "syncfs", Path: path, Err: syscall.EIO}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	var files []engine.FileMeta
	for i := range syncfsFrom {
		f, data := file(fmt.Sprintf("seg_%03d", i), 1000, byte(i))
		stage(t, a, f, data, f.Length)
		files = append(files, f)
	}
	if err := a.Sync(files); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if !slices.Equal(calls, []string{"staging.syncfs"}) {
		t.Fatalf("synced by %v, want one syncfs", calls)
	}
	fail = true
	mu.Unlock()
	if err := a.Sync(files); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync with a failing syncfs = %v, want EIO", err)
	}
}

// Untouched tells a file nobody staged (a transfer starts it without
// looking) from one staged here or left by an earlier process.
func TestUntouched(t *testing.T) {
	dir := t.TempDir()
	left, ld := file("seg_left", 10_000, 1)
	a := open(t, dir)
	if !a.Untouched(left.Name) {
		t.Fatal("a file never staged is not untouched")
	}
	stage(t, a, left, ld, 5_000)
	if a.Untouched(left.Name) {
		t.Fatal("a file staged here is untouched")
	}
	a = open(t, dir) // a restart: the file is an earlier process's
	if a.Untouched(left.Name) {
		t.Fatal("a file an earlier process left is untouched before Keep")
	}
	if _, _, err := a.Keep(nil); err != nil {
		t.Fatal(err)
	}
	if !a.Untouched(left.Name) {
		t.Fatal("a file Keep removed is not untouched")
	}
}
