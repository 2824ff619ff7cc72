package shardstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/recoverd/recoverd/internal/fsutil"
)

// SweepTempAge is how old a temp file must be before Sweep removes it: a
// younger one may belong to a durable write in progress (the leases file
// is written outside the shard lock).
const SweepTempAge = time.Minute

// SweepResult says what Sweep removed, by kind (names relative to the
// shard directory's part they live in).
type SweepResult struct {
	// Staging lists the recovery ids whose staging directory was removed.
	Staging []string
	// Temps lists temp files of interrupted durable writes.
	Temps []string
	// Unreferenced lists segments and commit points that neither the
	// current commit nor a pin references, and op log epochs other than
	// the current commit's.
	Unreferenced []string
}

// Sweep removes what failed or interrupted work left in a shard that is
// open: staging directories of recoveries neither staging in this process
// (Stagings) nor named in keepStaging, temp files older than SweepTempAge,
// and files no commit or pin references. It runs under the shard lock, so
// no flush, merge, publish or new staging runs meanwhile; it never removes
// a file the current commit or a pinned commit references, nor unknown
// files. On error, the result holds what was removed before it.
func (s *Shard) Sweep(keepStaging map[string]bool) (SweepResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res SweepResult
	if s.closed {
		return res, ErrClosed
	}
	root := filepath.Join(s.dir, stagingDir)
	entries, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("shardstore: list staging: %w", err)
	}
	s.leftStaging = false
	for _, e := range entries {
		id := e.Name()
		if _, open := s.stagings[id]; open {
			continue
		}
		if keepStaging[id] {
			s.leftStaging = true // a recovery that resumes takes it up
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, id)); err != nil {
			return res, fmt.Errorf("shardstore: remove staging %s: %w", id, err)
		}
		res.Staging = append(res.Staging, id)
	}

	entries, err = os.ReadDir(s.dir)
	if err != nil {
		return res, fmt.Errorf("shardstore: list shard dir: %w", err)
	}
	now := time.Now()
	for _, e := range entries {
		if !e.Type().IsRegular() || !fsutil.IsTemp(e.Name()) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // the write finished meanwhile
		}
		if err != nil {
			return res, fmt.Errorf("shardstore: stat %s: %w", e.Name(), err)
		}
		if now.Sub(info.ModTime()) < SweepTempAge {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("shardstore: remove %s: %w", e.Name(), err)
		}
		res.Temps = append(res.Temps, e.Name())
	}

	removed, err := s.removeUnreferencedNames()
	res.Unreferenced = append(res.Unreferenced, removed...)
	if err != nil {
		return res, err
	}
	epochs, err := os.ReadDir(filepath.Join(s.dir, oplogDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("shardstore: list op log epochs: %w", err)
	}
	for _, e := range epochs {
		if n, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && n == s.commit.OplogEpoch {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.dir, oplogDir, e.Name())); err != nil {
			return res, fmt.Errorf("shardstore: remove op log epoch %s: %w", e.Name(), err)
		}
		res.Unreferenced = append(res.Unreferenced, filepath.Join(oplogDir, e.Name()))
	}
	return res, nil
}
