package shardstore

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/fsutil"
)

var (
	// ErrStagingExists is returned when a staging of that recovery id is
	// in use.
	ErrStagingExists = engine.ErrStagingExists
	// ErrConflict is returned when publishing would replace a file the
	// current commit references with different content.
	ErrConflict = engine.ErrConflict
)

// Staging is one in-flight recovery's staging/<recovery-id>/: its caller
// writes the files of the new commit into Dir (recoverd does, and
// verifies and fsyncs them: internal/staging), the ops fetched with them
// are staged here (AppendOps), and Publish moves the whole set into place
// with one commit point. Nothing in it is read as data before.
type Staging struct {
	s   *Shard
	id  string
	dir string

	mu        sync.Mutex
	ops       *opLog // staged ops, created by the first AppendOps
	stagedOps int
	done      bool
}

// StartStaging creates staging/<recoveryID>/ for a recovery. When the
// directory is there already (the recovery ran in an earlier process of
// this node, which kept it: Options.KeepStaging, or Suspend), it is handed
// back as it is, files and all, for the recovery to check what it finds.
func (s *Shard) StartStaging(recoveryID string) (*Staging, error) {
	s.touch()
	if err := ValidateName(recoveryID); err != nil {
		return nil, fmt.Errorf("recovery id: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if _, ok := s.stagings[recoveryID]; ok {
		return nil, fmt.Errorf("%w: %s", ErrStagingExists, recoveryID)
	}
	dir := filepath.Join(s.dir, stagingDir, recoveryID)
	if err := fsutil.MkdirAllSync(dir, 0o755); err != nil {
		return nil, fmt.Errorf("shardstore: create staging: %w", err)
	}
	st := &Staging{s: s, id: recoveryID, dir: dir}
	s.stagings[recoveryID] = st
	return st, nil
}

// Stagings lists the recovery ids staging files in this process.
func (s *Shard) Stagings() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.stagings))
	for id := range s.stagings {
		out = append(out, id)
	}
	return out
}

// Dir is the staging directory.
func (st *Staging) Dir() string { return st.dir }

// ID is the recovery id the staging belongs to.
func (st *Staging) ID() string { return st.id }

// Abandon deletes the staging directory and everything in it.
func (st *Staging) Abandon() error {
	st.mu.Lock()
	st.done = true
	if st.ops != nil {
		st.ops.close()
		st.ops = nil
	}
	st.mu.Unlock()
	// Removed before it is unregistered, so that a concurrent Sweep does
	// not take it for a leftover; if removal fails, Sweep retries it.
	err := os.RemoveAll(st.dir)
	st.s.mu.Lock()
	delete(st.s.stagings, st.id)
	st.s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("shardstore: remove staging %s: %w", st.id, err)
	}
	return nil
}

// Suspend ends the staging's use in this process and keeps its directory
// (and what its caller wrote there): the node is stopping and the
// recovery resumes from it (StartStaging with the same id) when it starts
// again. Its staged ops stay in the directory until DiscardOps: a
// recovery that resumes fetches its ops afresh.
func (st *Staging) Suspend() error {
	st.mu.Lock()
	st.done = true
	if st.ops != nil {
		st.ops.close()
		st.ops = nil
	}
	st.mu.Unlock()
	st.s.mu.Lock()
	delete(st.s.stagings, st.id)
	st.s.mu.Unlock()
	return nil
}
