package shardstore

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/recoverd/recoverd/internal/fsutil"
)

// stagedOpsDir holds the staged op log inside a staging directory; its
// name cannot clash with a file name (names are validated, and this one
// is never a segment name).
const stagedOpsDir = "ops.staged"

// AppendOps stages ops to be published with the files: after Publish they
// are part of the shard as if applied, in the same atomic step, so a crash
// never leaves the files without the ops fetched for them.
func (st *Staging) AppendOps(ops []Op) error {
	for i := range ops {
		if err := validateOp(&ops[i]); err != nil {
			return fmt.Errorf("staged op %d: %w", i, err)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return fmt.Errorf("%w: staging %s is finished", ErrClosed, st.id)
	}
	if st.ops == nil {
		l, err := openOpLog(filepath.Join(st.dir, stagedOpsDir), &st.s.opts, func(*Op) {})
		if err != nil {
			return err
		}
		st.ops = l
	}
	// Not fsynced here: staging is discarded at restart anyway, and Publish
	// makes the staged set durable before it counts.
	if _, err := st.ops.append(ops); err != nil {
		return err
	}
	st.stagedOps += len(ops)
	return nil
}

// DiscardOps drops the ops staged so far (a recovery that re-plans fetches
// the ops of its new plan); staged files stay.
func (st *Staging) DiscardOps() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return fmt.Errorf("%w: staging %s is finished", ErrClosed, st.id)
	}
	if st.ops != nil {
		st.ops.close()
		st.ops = nil
	}
	st.stagedOps = 0
	if err := os.RemoveAll(filepath.Join(st.dir, stagedOpsDir)); err != nil {
		return fmt.Errorf("shardstore: discard staged ops: %w", err)
	}
	return nil
}

// StagedOps is the number of ops staged with AppendOps.
func (st *Staging) StagedOps() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.stagedOps
}

// moveOps turns the staged op log (or an empty one) into the op log epoch
// at dst.
func (st *Staging) moveOps(dst string) error {
	if st.ops == nil {
		return fsutil.MkdirAllSync(dst, 0o755)
	}
	if err := st.ops.close(); err != nil {
		return err
	}
	st.ops = nil
	if err := fsutil.MkdirAllSync(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.Rename(filepath.Join(st.dir, stagedOpsDir), dst)
}
