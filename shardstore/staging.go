package shardstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/fsutil"
)

var (
	// ErrStagingExists is returned when a recovery id already stages files.
	ErrStagingExists = engine.ErrStagingExists
	// ErrConflict is returned when publishing would replace a file the
	// current commit references with different content.
	ErrConflict = engine.ErrConflict
)

// Staging holds the files of one in-flight recovery under
// staging/<recovery-id>/. Nothing in it is read as data until Publish moves
// the whole set into place with one commit point.
type Staging struct {
	s   *Shard
	id  string
	dir string

	mu        sync.Mutex
	files     map[string]*stagedState
	ops       *opLog // staged ops, created by the first AppendOps
	stagedOps int
	done      bool
	// found lists the files an earlier process of this recovery left in
	// the directory: none counts until Keep has checked it.
	found map[string]bool
}

type stagedState struct {
	meta     FileMeta
	verified bool
	// good is the length of the prefix a writer declared written and
	// checked (MarkGood): a transfer cut short resumes after it. After a
	// restart it is what Keep could check again (staging_resume.go).
	good int64
	// recorded is the prefix the file's progress record names.
	recorded int64
	// crc is the CRC32C of the file's first crcOff bytes (capped at
	// Length-4), as written in order; tail holds the last four bytes once
	// written. When the whole file was written in order, Verify checks
	// them instead of reading the file back.
	crc    uint32
	crcOff int64
	tail   [4]byte
}

// track extends the running checksum with p written at off, when it
// continues the bytes already summed.
func (s *stagedState) track(p []byte, off int64) {
	if off != s.crcOff || len(p) == 0 {
		return
	}
	body := s.meta.Length - 4
	if off < body {
		n := min(int64(len(p)), body-off)
		s.crc = crc32.Update(s.crc, castagnoli, p[:n])
	}
	if end := off + int64(len(p)); end > body { // the last four bytes: the footer
		from := max(off, body)
		copy(s.tail[from-body:], p[from-off:])
	}
	s.crcOff = off + int64(len(p))
}

// StartStaging creates staging/<recoveryID>/ for a recovery. When the
// directory is there already (the recovery ran in an earlier process of
// this node, which kept it: Options.KeepStaging), its files stay for Keep
// to check against the recovery's plan; until then none counts as staged.
func (s *Shard) StartStaging(recoveryID string) (*Staging, error) {
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
	st := &Staging{s: s, id: recoveryID, dir: dir, files: map[string]*stagedState{}}
	found, err := st.scan()
	if err != nil {
		return nil, err
	}
	st.found = found
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

// RemoveFile deletes one staged file (a download that failed, to be fetched
// from elsewhere).
func (st *Staging) RemoveFile(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.files, name)
	delete(st.found, name)
	os.Remove(st.progressPath(name))
	if err := os.Remove(filepath.Join(st.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Files lists the staged files.
func (st *Staging) Files() []FileMeta {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]FileMeta, 0, len(st.files))
	for _, f := range st.files {
		out = append(out, f.meta)
	}
	return out
}

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
