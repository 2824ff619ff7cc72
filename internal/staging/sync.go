package staging

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/recoverd/recoverd/engine"
)

const (
	// syncParallel bounds the fsyncs of staged files in flight at once.
	syncParallel = 16
	// syncfsFrom: from this many staged files on, one syncfs of the
	// staging directory's filesystem replaces an fsync per file. An fsync
	// commits the filesystem's journal once per file: 10,000 small files
	// took 3 s of fsyncs in bench case 2, where cp -r + sync pays one.
	syncfsFrom = 64
	// syncBehindFrom: files at least this long are fsynced as soon as
	// they are verified (SyncBehind); syncBehindParallel of those at once.
	syncBehindFrom     = 4 << 20
	syncBehindParallel = 2
	// syncfsBehindEvery: each time smaller files of this many bytes were
	// verified, SyncBehind starts a syncfs (one at a time).
	syncfsBehindEvery = 32 << 20
)

// Sync makes every file of files staged in the area durable, and returns
// the first error: the files must be durable before the engine publishes
// a commit that names them. Files not staged here (kept from the target's
// current commit) are skipped, and so are those an fsync of SyncBehind
// made durable (Sync waits for those still running first; one that failed
// fails Sync). A few files are fsynced in parallel (at most syncParallel
// at once), each on a descriptor of its own with its error checked. From
// syncfsFrom files on, one syncfs(2) of the staging directory's
// filesystem writes them all back (it reports a writeback error of any
// file of that filesystem not yet reported, since Linux 5.8: one of
// another file fails the recovery too, which errs on the safe side).
func (a *Area) Sync(files []engine.FileMeta) error {
	a.behind.Wait()
	a.mu.Lock()
	var paths []string
	behindErr := a.behindErr
	for _, f := range files {
		s, ok := a.files[f.Name]
		switch {
		case !ok || s.durable:
		case s.syncErr != nil:
			behindErr = cmp.Or(behindErr, s.syncErr)
		default:
			paths = append(paths, filepath.Join(a.dir, f.Name))
		}
	}
	a.mu.Unlock()
	if behindErr != nil {
		return behindErr
	}
	if len(paths) >= syncfsFrom {
		return a.syncfs()
	}
	var g errgroup.Group
	g.SetLimit(syncParallel)
	for _, path := range paths {
		g.Go(func() error { return a.fsync(path) })
	}
	return g.Wait()
}

// SyncBehind starts the fsync of a verified file in the background, so
// that its writeback overlaps the transfer of the files still coming
// rather than all of it waiting for Sync at the end (bench case 1: Sync
// took 0.8 s of a 2.9 s recovery of 1 GiB). Files shorter than
// syncBehindFrom are left to Sync, where many go in one syncfs. A write
// or truncation while the fsync runs leaves the file to Sync again.
func (sf *File) SyncBehind() {
	a := sf.a
	if sf.meta.Length < syncBehindFrom {
		a.syncfsBehind(sf.meta.Length)
		return
	}
	a.mu.Lock()
	s, ok := a.files[sf.meta.Name]
	if !ok || !s.verified || s.durable || a.done {
		a.mu.Unlock()
		return
	}
	writes := s.writes
	a.behind.Add(1)
	a.mu.Unlock()
	path := sf.f.Name()
	go func() {
		defer a.behind.Done()
		a.behindSlots <- struct{}{}
		err := a.fsync(path)
		<-a.behindSlots
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.files[sf.meta.Name] != s || s.writes != writes {
			return // staged again since: Sync sees to it
		}
		if err != nil {
			s.syncErr = err
		} else {
			s.durable = true
		}
	}()
}

// syncfsBehind counts n more bytes of small files verified and starts a
// syncfs of the staging filesystem every syncfsBehindEvery bytes, when none
// runs: the small files' writeback overlaps the transfer too. Sync still
// syncs them all (little is left to write by then); a syncfs behind that
// fails fails it.
func (a *Area) syncfsBehind(n int64) {
	a.mu.Lock()
	a.smallBehind += n
	start := a.smallBehind >= syncfsBehindEvery && !a.syncfsRunning && !a.done
	if start {
		a.smallBehind, a.syncfsRunning = 0, true
		a.behind.Add(1)
	}
	a.mu.Unlock()
	if !start {
		return
	}
	go func() {
		defer a.behind.Done()
		err := a.syncfs()
		a.mu.Lock()
		defer a.mu.Unlock()
		a.syncfsRunning = false
		a.behindErr = cmp.Or(a.behindErr, err)
	}()
}

// fsync makes one staged file durable, on a descriptor of its own.
func (a *Area) fsync(path string) error {
	name := filepath.Base(path)
	if err := a.opts.Fault("staging.fsync", path); err != nil {
		return fmt.Errorf("staging: fsync %s: %w", name, err)
	}
	fd, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("staging: open %s: %w", name, err)
	}
	err = fd.Sync()
	if cerr := fd.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("staging: fsync %s: %w", name, err)
	}
	return nil
}

// syncfs writes back the filesystem of the staging directory.
func (a *Area) syncfs() error {
	if err := a.opts.Fault("staging.syncfs", a.dir); err != nil {
		return fmt.Errorf("staging: syncfs of %s: %w", a.dir, err)
	}
	d, err := os.Open(a.dir)
	if err != nil {
		return fmt.Errorf("staging: open %s: %w", a.dir, err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("staging: syncfs of %s: %w", a.dir, err)
	}
	return nil
}
