package staging

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/recoverd/recoverd/engine"
)

// syncParallel bounds the fsyncs of staged files in flight at once.
const syncParallel = 16

// Sync fsyncs every file of files staged in the area, in parallel (at most
// syncParallel at once), each on a descriptor of its own with its error
// checked, and returns the first error: the files must be durable before
// the engine publishes a commit that names them. Files not staged here
// (kept from the target's current commit) are skipped.
func (a *Area) Sync(files []engine.FileMeta) error {
	a.mu.Lock()
	var paths []string
	for _, f := range files {
		if _, ok := a.files[f.Name]; ok {
			paths = append(paths, filepath.Join(a.dir, f.Name))
		}
	}
	a.mu.Unlock()
	var g errgroup.Group
	g.SetLimit(syncParallel)
	for _, path := range paths {
		g.Go(func() error {
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
		})
	}
	return g.Wait()
}
