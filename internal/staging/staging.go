package staging

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/recoverd/recoverd/engine"
)

// ErrFinished is returned by calls on an area once it is suspended or
// closed.
var ErrFinished = errors.New("staging: the staging area is finished")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options tune an Area.
type Options struct {
	// Fault, when set, is asked before each fsync of a staged file (point
	// "staging.fsync", with its path), each syncfs ("staging.syncfs") and
	// each open of a file for O_DIRECT ("staging.open-direct"); an error
	// it returns is handled as if the call had failed. Tests use it: a
	// real disk cannot be made to fail on demand, nor a file system to
	// refuse O_DIRECT (tmpfs takes it since Linux 6.6).
	Fault func(point, path string) error
}

// Area is the files of one recovery in one staging directory.
type Area struct {
	id   string
	dir  string
	opts Options

	mu    sync.Mutex
	files map[string]*fileState
	done  bool
	// found lists the files an earlier process of this recovery left in
	// the directory: none counts until Keep has checked it.
	found map[string]bool
	// progressDirMade: the directory of progress records exists (a
	// record is written every 8 MiB of every file: no mkdir each time).
	progressDirMade atomic.Bool
	// behind counts the fsyncs SyncBehind started and that have not
	// ended; behindSlots bounds those running at once.
	behind      sync.WaitGroup
	behindSlots chan struct{}
	// smallBehind counts bytes of small files verified since the last
	// syncfs behind; syncfsRunning says one runs; behindErr is the error
	// of one that failed.
	smallBehind   int64
	syncfsRunning bool
	behindErr     error
}

// Open returns the area of recovery id in dir (an engine's Staging.Dir),
// listing the files an earlier process left there (for Keep to check) and
// removing its dot-named leftovers.
func Open(id, dir string, opts Options) (*Area, error) {
	if opts.Fault == nil {
		opts.Fault = func(string, string) error { return nil }
	}
	a := &Area{id: id, dir: dir, opts: opts, files: map[string]*fileState{}, behindSlots: make(chan struct{}, syncBehindParallel)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("staging: list %s: %w", id, err)
	}
	a.found = map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, "."):
			os.RemoveAll(filepath.Join(dir, name))
		case e.Type().IsRegular() && engine.ValidateName(name) == nil:
			a.found[name] = true
		}
	}
	return a, nil
}

// Dir is the staging directory.
func (a *Area) Dir() string { return a.dir }

// ID is the recovery id.
func (a *Area) ID() string { return a.id }

// RemoveFile deletes one staged file (a download that failed, to be
// fetched from elsewhere).
func (a *Area) RemoveFile(name string) error {
	if err := engine.ValidateName(name); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.files, name)
	delete(a.found, name)
	os.Remove(a.progressPath(name))
	if err := os.Remove(filepath.Join(a.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Files lists the staged files.
func (a *Area) Files() []engine.FileMeta {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]engine.FileMeta, 0, len(a.files))
	for _, f := range a.files {
		out = append(out, f.meta)
	}
	return out
}

// Verified reports whether the file is staged with meta and verified (by
// this process or, after a restart, by Keep): it need not be fetched.
func (a *Area) Verified(meta engine.FileMeta) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.files[meta.Name]
	return ok && s.verified && s.meta == meta
}

// Untouched says no file name was staged in the area, by this process or
// an earlier one: a transfer of it starts from nothing, with nothing to
// look at first.
func (a *Area) Untouched(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, staged := a.files[name]
	return !staged && !a.found[name]
}

// Close ends the area's use (the staging was published or abandoned):
// files are no longer created in it. It waits for the fsyncs SyncBehind
// started.
func (a *Area) Close() {
	a.mu.Lock()
	a.done = true
	a.mu.Unlock()
	a.behind.Wait()
}
