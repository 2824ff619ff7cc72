package shardstore

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// CommitRef pins one commit's files: they stay on disk, even after newer
// commits, until Release.
type CommitRef struct {
	s    *Shard
	meta Metadata
	once sync.Once
}

// AcquireCommit flushes nothing and pins the current commit.
func (s *Shard) AcquireCommit() (*CommitRef, error) {
	s.touch()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.commit.Generation == 0 {
		return nil, s.errUncommitted()
	}
	meta := s.commit.metadata()
	s.refs++
	for _, f := range meta.Files {
		s.pins[f.Name]++
	}
	return &CommitRef{s: s, meta: meta}, nil
}

// Metadata returns the pinned commit's files and user data.
func (r *CommitRef) Metadata() Metadata { return r.meta }

// Open opens one file of the pinned commit for reading.
func (r *CommitRef) Open(name string) (*os.File, FileMeta, error) {
	path, fm, err := r.Path(name)
	if err != nil {
		return nil, FileMeta{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, FileMeta{}, fmt.Errorf("shardstore: open %s: %w", name, err)
	}
	return f, fm, nil
}

// Path returns the path of one file of the pinned commit, and its
// metadata: the file there is the commit's until Release.
func (r *CommitRef) Path(name string) (string, FileMeta, error) {
	if err := ValidateName(name); err != nil {
		return "", FileMeta{}, err
	}
	fm, ok := r.meta.Lookup(name)
	if !ok {
		return "", FileMeta{}, fmt.Errorf("%w: file %s is not in commit %d of %s", ErrNotFound, name, r.meta.Generation, r.s.id)
	}
	return filepath.Join(r.s.dir, name), fm, nil
}

// Shard is the shard whose commit r pins.
func (r *CommitRef) Shard() *Shard { return r.s }

// Release unpins the commit; files no commit needs any more are deleted.
func (r *CommitRef) Release() error {
	var err error
	r.once.Do(func() {
		s := r.s
		s.mu.Lock()
		defer s.mu.Unlock()
		s.refs--
		for _, f := range r.meta.Files {
			if s.pins[f.Name]--; s.pins[f.Name] <= 0 {
				delete(s.pins, f.Name)
			}
		}
		if !s.closed {
			err = s.removeUnreferenced()
		}
	})
	return err
}

// Pinned reports whether a file is held by a CommitRef (for cleanup).
func (s *Shard) Pinned(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pins[name] > 0
}
